//! Where the store's queries go: the pool, directly to PostgreSQL or through a pooler in
//! transaction mode (PgBouncer, the Cloud SQL connector's pooling, pgcat).
//!
//! A transaction-mode pooler lends a server connection for one transaction and takes it back
//! at every `ReadyForQuery` outside one. sqlx's extended protocol sends `Parse`/`Describe` and
//! a `Sync`, then `Bind`/`Execute` and another `Sync`; between the two the pooler may hand the
//! client another server, where the statement does not exist. So behind such a pooler
//! ([`Db::behind_pooler`]) every query runs inside its own `BEGIN … COMMIT`, which holds one
//! server for all its messages, and statements are unnamed ([`Unnamed`]; sqlx would otherwise
//! name them `sqlx_s_1`, … per client connection, and two clients' names would meet on one
//! server): no named statement, `SET` or advisory lock outlives the transaction that made it. LISTEN needs
//! a session of its own: the change feed connects directly
//! ([`super::Store::session_pool`]), as do migrations and DETACH … CONCURRENTLY.

use futures::{StreamExt, TryStreamExt};
use futures::{future::BoxFuture, stream::BoxStream};
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Either, Execute, Executor, PgPool, Postgres};

type Rows<'e> = BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>;

/// The pool, and whether a transaction-mode pooler stands between it and PostgreSQL.
#[derive(Clone, Debug)]
pub struct Db {
    pool: PgPool,
    pooled: bool,
}

impl Db {
    /// Straight to PostgreSQL: queries run as sqlx runs them, statements cached.
    pub fn direct(pool: PgPool) -> Self {
        Self {
            pool,
            pooled: false,
        }
    }

    /// Through a transaction-mode pooler: each query in a transaction of its own. `pool` must
    /// have sqlx's statement cache off (see `Store::connect_lazy`).
    pub fn behind_pooler(pool: PgPool) -> Self {
        Self { pool, pooled: true }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction; behind a pooler its statements are unnamed too.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(Tx {
            inner: self.pool.begin().await?,
            pooled: self.pooled,
        })
    }
}

/// A query whose statement is prepared unnamed, never kept: the same query otherwise.
struct Unnamed<E>(E);

impl<'q, E: Execute<'q, Postgres>> Execute<'q, Postgres> for Unnamed<E> {
    fn sql(self) -> sqlx::SqlStr {
        self.0.sql()
    }

    fn statement(&self) -> Option<&PgStatement> {
        self.0.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<PgArguments>, sqlx::error::BoxDynError> {
        self.0.take_arguments()
    }

    fn persistent(&self) -> bool {
        false
    }
}

/// A transaction of [`Db::begin`]: run queries on `&mut tx`, then [`Tx::commit`]; dropped
/// without, it rolls back.
pub struct Tx {
    inner: sqlx::Transaction<'static, Postgres>,
    pooled: bool,
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").field("pooled", &self.pooled).finish()
    }
}

impl<'c> Executor<'c> for &'c mut Tx {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> Rows<'e>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if self.pooled {
            (&mut *self.inner).fetch_many(Unnamed(query))
        } else {
            (&mut *self.inner).fetch_many(query)
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if self.pooled {
            (&mut *self.inner).fetch_optional(Unnamed(query))
        } else {
            (&mut *self.inner).fetch_optional(query)
        }
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        (&mut *self.inner).prepare_with(sql, parameters)
    }

    fn describe<'e>(
        self,
        sql: sqlx::SqlStr,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        (&mut *self.inner).describe(sql)
    }
}

impl<'p> Executor<'p> for &'_ Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> Rows<'e>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.pooled {
            return (&self.pool).fetch_many(query);
        }
        // The whole answer inside the transaction, then handed out: the store's queries read
        // bounded pages.
        let pool = self.pool.clone();
        futures::stream::once(async move {
            let mut tx = pool.begin().await?;
            let items: Vec<_> = (&mut tx).fetch_many(Unnamed(query)).try_collect().await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(futures::stream::iter(items.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.pooled {
            return (&self.pool).fetch_optional(query);
        }
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut tx = pool.begin().await?;
            let row = (&mut tx).fetch_optional(Unnamed(query)).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        (&self.pool).prepare_with(sql, parameters)
    }

    fn describe<'e>(
        self,
        sql: sqlx::SqlStr,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>> {
        (&self.pool).describe(sql)
    }
}
