/**
 * A real S3 server for tests: s3rver on 127.0.0.1, an ephemeral port, data in a temp
 * directory, with one bucket. Its credentials are s3rver's defaults (S3RVER / S3RVER).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';

/** the part of s3rver's API used here (the package ships no types) */
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverCtor = new (opts: {
  address: string;
  port: number;
  directory: string;
  silent: boolean;
  configureBuckets: Array<{ name: string }>;
}) => S3rverInstance;

export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface TestS3Server {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  bucket: string;
  /** the copytool's --s3 URL: http://127.0.0.1:PORT/BUCKET */
  url: string;
  /** where s3rver keeps the buckets */
  dir: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** AWS_* variables for a child process that talks to this server */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startS3Server(bucket = 'stria-test'): Promise<TestS3Server> {
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverCtor;
  const dir = await mkdtemp(join(tmpdir(), 'stria-s3-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory: dir, silent: true, configureBuckets: [{ name: bucket }] });
  let addr: AddressInfo;
  try {
    addr = await server.run();
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const endpoint = `http://127.0.0.1:${addr.port}`;
  let stopped = false;
  return {
    endpoint,
    bucket,
    url: `${endpoint}/${bucket}`,
    dir,
    credentials: { ...S3RVER_CREDENTIALS },
    env: { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
