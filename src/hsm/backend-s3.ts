/**
 * Archive in an S3 bucket (AWS, MinIO, Ceph RGW, s3rver...), one object per file under
 * `<prefix>/<archive key>`. Where the checksum lives:
 * - files up to the part size: one PutObject, checksum in the user metadata `stria-sha256`;
 * - larger files: a multipart upload (lib-storage), streamed part by part; the checksum is
 *   known only at the end, so
 *   - objects up to 5 GiB (the CopyObject limit; `metadataCopyLimit`) get it afterwards
 *     through a copy onto themselves with MetadataDirective REPLACE (server-side, no data
 *     through us);
 *   - bigger ones keep it in a small companion object `<key>.sha256` ("sha256:<hex>").
 * head and get read the metadata first and fall back to the companion. Between the end of
 * a multipart upload and the metadata copy the object has no checksum: a crash there leaves
 * a copy that only the caller's expected checksum (the inode's) can vouch for.
 */
import { Readable } from 'node:stream';
import {
  CopyObjectCommand, CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, PutObjectCommand, S3Client,
  type BucketLocationConstraint, type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { err, StriaError } from '../common/errno.js';
import { withPrefix } from './archive-key.js';
import {
  CHECKSUM_SUFFIX, Rechunker, StreamDigest, canceled, checkDigest, checkExpected, chunkSizeOf, digested, noObject, validateKey,
  type ArchiveBackend, type ArchivedObject, type ChunkSink, type GetOptions, type ObjectDigest, type PutOptions,
} from './archive-backend.js';

export const MIN_PART_SIZE = 5 << 20;
/** S3's largest part (and largest single PUT) */
export const MAX_PART_SIZE = 5 * 2 ** 30;
/** CopyObject copies at most this much: bigger objects keep their checksum in a companion */
export const MAX_COPY_SIZE = 5 * 2 ** 30;
export const DEFAULT_PART_SIZE = 8 << 20;
export const DEFAULT_QUEUE_SIZE = 4;
/** user metadata key (x-amz-meta-stria-sha256) */
export const CHECKSUM_METADATA = 'stria-sha256';
const S3_MAX_PARTS = 10_000;

export interface S3BackendOptions {
  bucket: string;
  /** key prefix inside the bucket, without leading or trailing '/' */
  prefix?: string;
  /** http(s)://host[:port] of an S3-compatible server; undefined: AWS */
  endpoint?: string;
  /** default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1 with an endpoint, else the SDK's profile lookup */
  region?: string;
  /** default: the SDK's chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles...) */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** bucket in the path rather than the host name (default: on with an endpoint) */
  forcePathStyle?: boolean;
  /** multipart part size, >= 5 MiB; files up to it go in one PUT */
  partSize?: number;
  /** parts uploaded at once per file (memory: queueSize x partSize per transfer) */
  queueSize?: number;
  /**
   * multipart objects up to this size get their checksum as metadata through a self-copy,
   * bigger ones in a companion object (default and most: 5 GiB, S3's CopyObject limit;
   * lower it for stores with a smaller copy limit)
   */
  metadataCopyLimit?: number;
}

export class S3Backend implements ArchiveBackend {
  readonly bucket: string;
  readonly prefix: string;
  readonly endpoint: string | undefined;
  readonly partSize: number;
  readonly queueSize: number;
  readonly metadataCopyLimit: number;
  /** the SDK client (tools and tests may add middleware) */
  readonly s3: S3Client;
  private readonly pathStyle: boolean;

  constructor(opts: S3BackendOptions) {
    this.bucket = opts.bucket;
    this.prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.endpoint = opts.endpoint;
    this.partSize = opts.partSize ?? DEFAULT_PART_SIZE;
    this.queueSize = opts.queueSize ?? DEFAULT_QUEUE_SIZE;
    this.metadataCopyLimit = Math.min(opts.metadataCopyLimit ?? MAX_COPY_SIZE, MAX_COPY_SIZE);
    validatePartSize(this.partSize);
    if (!Number.isInteger(this.queueSize) || this.queueSize < 1 || this.queueSize > 64) {
      throw err('EINVAL', `queue size ${this.queueSize}: must be 1..64`, 'BAD_QUEUE_SIZE');
    }
    this.pathStyle = opts.forcePathStyle ?? opts.endpoint !== undefined;
    quietNodeVersionWarning();
    const region = opts.region ?? envRegion() ?? (opts.endpoint !== undefined ? 'us-east-1' : undefined);
    const config: S3ClientConfig = {
      forcePathStyle: this.pathStyle,
      // s3rver and several S3-compatible stores reject the SDK's default CRC32 trailers
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...(region !== undefined ? { region } : {}),
      ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
    };
    this.s3 = new S3Client(config);
  }

  describe(): string {
    const where = this.endpoint ?? 'AWS';
    return `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ''} at ${where}${this.pathStyle ? ' (path-style)' : ''}`;
  }

  private objectKey(key: string): string {
    validateKey(key);
    return withPrefix(this.prefix, key);
  }

  /** Checks the bucket is reachable with these credentials; creates it when missing and asked to. */
  async checkBucket(create = false): Promise<void> {
    try {
      await this.s3.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (e) {
      if (!isNotFound(e) && (e as { name?: string }).name !== 'NoSuchBucket') throw this.mapError(e, `bucket ${this.bucket}`);
      if (!create) throw err('ENOENT', `bucket ${this.bucket} does not exist at ${this.endpoint ?? 'AWS'} (create it, or start the copytool with --create-bucket)`, 'NO_BUCKET');
    }
    const region = await this.s3.config.region();
    try {
      await this.s3.send(
        new CreateBucketCommand({
          Bucket: this.bucket,
          // us-east-1 is the default location and may not be named
          ...(this.endpoint === undefined && region !== 'us-east-1' ? { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } } : {}),
        }),
      );
    } catch (e) {
      // created meanwhile by another copytool: fine
      const name = (e as { name?: string }).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw this.mapError(e, `creating bucket ${this.bucket}`);
    }
  }

  async put(key: string, data: AsyncIterable<Buffer>, size: number, opts: PutOptions = {}): Promise<ObjectDigest> {
    const k = this.objectKey(key);
    if (!Number.isSafeInteger(size) || size < 0) throw err('EINVAL', `bad size ${size}`, 'BAD_SIZE');
    if (size > this.partSize * S3_MAX_PARTS) {
      throw err('EFBIG', `archive ${key}: ${size} bytes need more than ${S3_MAX_PARTS} parts of ${this.partSize}: raise the part size`, 'TOO_MANY_PARTS');
    }
    const digest = new StreamDigest();
    const source = digested(data, digest, size, key, opts.signal);
    try {
      if (size <= this.partSize) return await this.putSingle(k, source, size, digest, opts.signal);
      return await this.putMultipart(k, source, size, digest, opts.signal);
    } catch (e) {
      if (e instanceof StriaError) throw e;
      throw this.mapError(e, `archive ${key}`, opts.signal);
    }
  }

  /** Small enough for one request: gathered in memory (at most one part size). */
  private async putSingle(k: string, source: AsyncIterable<Buffer>, size: number, digest: StreamDigest, signal: AbortSignal | undefined): Promise<ObjectDigest> {
    const body = Buffer.allocUnsafe(size);
    let fill = 0;
    for await (const chunk of source) fill += chunk.copy(body, fill);
    const checksum = digest.digest();
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket, Key: k, Body: body, ContentLength: size, ContentType: 'application/octet-stream',
        Metadata: { [CHECKSUM_METADATA]: checksum },
      }),
      { abortSignal: signal },
    );
    return { size, checksum };
  }

  private async putMultipart(k: string, source: AsyncIterable<Buffer>, size: number, digest: StreamDigest, signal: AbortSignal | undefined): Promise<ObjectDigest> {
    // a companion left by an older, bigger version of the file must not vouch for this one
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: `${k}${CHECKSUM_SUFFIX}` }), { abortSignal: signal });
    const abort = new AbortController();
    const onAbort = () => abort.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    // The source's own failure (size mismatch, read error) is the one to report, not what
    // aborting the multipart upload may fail with afterwards (some servers lack the call).
    let sourceError: unknown;
    async function* watched(): AsyncGenerator<Buffer> {
      try {
        yield* source;
      } catch (e) {
        sourceError = e;
        throw e;
      }
    }
    try {
      const upload = new Upload({
        client: this.s3,
        params: { Bucket: this.bucket, Key: k, Body: Readable.from(watched()), ContentType: 'application/octet-stream' },
        partSize: this.partSize,
        queueSize: this.queueSize,
        leavePartsOnError: false,
        abortController: abort,
      });
      await upload.done();
    } catch (e) {
      throw sourceError ?? e;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    const checksum = digest.digest();
    if (size <= this.metadataCopyLimit) {
      await this.s3.send(
        new CopyObjectCommand({
          Bucket: this.bucket, Key: k, CopySource: `${this.bucket}/${encodeCopyKey(k)}`,
          MetadataDirective: 'REPLACE', ContentType: 'application/octet-stream', Metadata: { [CHECKSUM_METADATA]: checksum },
        }),
        { abortSignal: signal },
      );
    } else {
      await this.s3.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: `${k}${CHECKSUM_SUFFIX}`, Body: checksum, ContentType: 'text/plain' }),
        { abortSignal: signal },
      );
    }
    return { size, checksum };
  }

  async get(key: string, sink: ChunkSink, opts: GetOptions = {}): Promise<ObjectDigest> {
    const k = this.objectKey(key);
    const out = new Rechunker(sink, chunkSizeOf(opts));
    let body: Readable | undefined;
    try {
      const r = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: k }), { abortSignal: opts.signal });
      body = r.Body as Readable | undefined;
      const size = r.ContentLength ?? 0;
      const stored = r.Metadata?.[CHECKSUM_METADATA] ?? (await this.companionChecksum(k, opts.signal));
      checkExpected(key, stored, opts.expectedChecksum);
      const digest = new StreamDigest();
      if (body) {
        for await (const piece of body as AsyncIterable<Uint8Array>) {
          if (opts.signal?.aborted) throw canceled(`restore of ${key}`);
          const buf = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
          digest.update(buf);
          await out.push(buf);
        }
      }
      const result = checkDigest(key, digest, size, stored, opts.expectedChecksum);
      await out.flush();
      return result;
    } catch (e) {
      body?.destroy();
      if (e instanceof StriaError) throw e;
      if (isNotFound(e)) throw noObject(key, this.describe());
      throw this.mapError(e, `restore of ${key}`, opts.signal);
    }
  }

  async head(key: string): Promise<ArchivedObject | undefined> {
    const k = this.objectKey(key);
    try {
      const r = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: k }));
      return { size: r.ContentLength ?? 0, checksum: r.Metadata?.[CHECKSUM_METADATA] ?? (await this.companionChecksum(k)) };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw this.mapError(e, `head of ${key}`);
    }
  }

  async remove(key: string): Promise<void> {
    const k = this.objectKey(key);
    try {
      // DeleteObject of a missing key succeeds
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: k }));
      await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: `${k}${CHECKSUM_SUFFIX}` }));
    } catch (e) {
      throw this.mapError(e, `remove of ${key}`);
    }
  }

  async close(): Promise<void> {
    this.s3.destroy();
  }

  private async companionChecksum(k: string, signal?: AbortSignal): Promise<string | undefined> {
    try {
      const r = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: `${k}${CHECKSUM_SUFFIX}` }), { abortSignal: signal });
      const text = (await r.Body?.transformToString('utf8')) ?? '';
      return text.trim();
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** SDK errors as StriaErrors with the S3 error name in the message. */
  private mapError(e: unknown, what: string, signal?: AbortSignal): StriaError {
    if (e instanceof StriaError) return e;
    const x = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number }; code?: string };
    if (signal?.aborted || x.name === 'AbortError') return canceled(what);
    const status = x.$metadata?.httpStatusCode;
    const detail = `${x.name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${x.message ?? String(e)}`;
    if (x.name === 'NoSuchBucket') return err('ENOENT', `${what}: bucket ${this.bucket} does not exist: ${detail}`, 'NO_BUCKET');
    if (status === 403 || ['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch'].includes(x.name ?? '')) {
      return err('EACCES', `${what}: access denied by ${this.endpoint ?? 'AWS'}: ${detail}`, 'S3_ACCESS_DENIED');
    }
    if (x.code === 'ECONNREFUSED' || x.name === 'ECONNREFUSED' || x.code === 'ENOTFOUND' || x.code === 'ETIMEDOUT') {
      return err('EIO', `${what}: cannot reach ${this.endpoint ?? 'AWS'}: ${detail}`, 'S3_UNREACHABLE');
    }
    return err('EIO', `${what}: ${detail}`, 'S3_ERROR');
  }
}

export function validatePartSize(n: number): void {
  if (!Number.isSafeInteger(n) || n < MIN_PART_SIZE || n > MAX_PART_SIZE) {
    throw err('EINVAL', `part size ${n}: must be 5 MiB..5 GiB`, 'BAD_PART_SIZE');
  }
}

function envRegion(): string | undefined {
  const r = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION;
  return r && r.length > 0 ? r : undefined;
}

function isNotFound(e: unknown): boolean {
  const x = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  if (x?.name === 'NoSuchBucket') return false;
  return x?.name === 'NoSuchKey' || x?.name === 'NotFound' || x?.$metadata?.httpStatusCode === 404;
}

/**
 * x-amz-copy-source is URL-encoded; ':' stays literal (valid in a path, and some servers
 * decode the header with decodeURI, which leaves %3A alone).
 */
function encodeCopyKey(key: string): string {
  return key.split('/').map((s) => encodeURIComponent(s).replace(/%3A/gi, ':')).join('/');
}

/**
 * The SDK warns once per process that its future versions will need Node 22; on Node 20
 * that lands in our logs as noise. AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED is the
 * SDK's own switch for it; an explicit setting by the user is left as it is.
 */
function quietNodeVersionWarning(): void {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}
