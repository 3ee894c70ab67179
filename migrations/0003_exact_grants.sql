-- A grant on a single object: it matches that name exactly, not every name it prefixes.
ALTER TABLE grants ADD COLUMN exact boolean NOT NULL DEFAULT false;
