// What the suites share: the broker under test (scripts/test-clients starts it with an emulator
// behind it), tokens from its dev issuer, and byte comparisons.
import { createHash, randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { createClient } from "../dist/index.js";

export const broker = process.env.BROKER_URL;
export const backend = process.env.BACKEND ?? "gcs";
export const protocol = { gcs: "gcs-v4", s3: "s3-sigv4", azure: "azure-sas" }[backend];
if (!broker) throw new Error("BROKER_URL is not set: run the suite through scripts/test-clients");

export async function token(sub, { ttl } = {}) {
  const query = new URLSearchParams({ sub });
  if (ttl) query.set("ttl", String(ttl));
  const answer = await fetch(`${broker}/dev/token?${query}`);
  if (!answer.ok) throw new Error(`dev token for ${sub}: ${answer.status}`);
  return (await answer.json()).access_token;
}

/** A client for `sub`, with its personal bucket. */
export async function as(sub, options = {}) {
  const client = createClient({ baseUrl: broker, token: await token(sub), ...options });
  const { personal_bucket: bucket } = await client.me();
  return { client, bucket };
}

export const sha = (bytes) => createHash("sha256").update(bytes).digest("hex");
export const random = (n) => new Uint8Array(randomBytes(n));
export const bytesOf = async (blob) => new Uint8Array(await blob.arrayBuffer());
export const unique = (name) => `${name}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;

/** Multipart uploads SeaweedFS still holds for `key` (boto3, as the storage admin would list them). */
export function pendingMultipartUploads(bucket, key) {
  const script = `
import boto3, json, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
answer = s3.list_multipart_uploads(Bucket=sys.argv[4], Prefix=sys.argv[5])
print(json.dumps([u["UploadId"] for u in answer.get("Uploads", [])]))
`;
  const out = execFileSync(process.env.PYTOOLS, ["-c", script, process.env.S3_ENDPOINT, process.env.S3_KEY_ID, process.env.S3_SECRET, bucket, key]);
  return JSON.parse(out.toString());
}
