/**
 * Where a copytool archives, as given on the command line:
 *   --s3 http(s)://host[:port]/bucket[/prefix]   an S3-compatible server (path-style by default)
 *   --s3 s3://bucket[/prefix]                    AWS S3 (region from AWS_REGION or --region)
 *   --posix DIR                                  a directory
 * `stria up --archive X` takes either: a URL with a scheme is S3, anything else a directory.
 * Credentials never go in the URL (they would end up in logs and `ps`).
 */
import { resolve } from 'node:path';
import { err } from '../common/errno.js';

export interface S3ArchiveTarget {
  kind: 's3';
  bucket: string;
  /** key prefix, without leading or trailing '/' ('' for none) */
  prefix: string;
  /** http(s)://host[:port]; undefined for AWS (s3://) */
  endpoint: string | undefined;
  /** the default addressing for this URL: path-style for an endpoint, virtual-hosted for AWS */
  pathStyle: boolean;
  /** the URL as given */
  text: string;
}

export interface PosixArchiveTarget {
  kind: 'posix';
  /** absolute */
  root: string;
}

export type ArchiveTarget = S3ArchiveTarget | PosixArchiveTarget;

const SCHEME_RE = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//;

function bad(text: string, why: string, code = 'BAD_ARCHIVE_URL'): never {
  throw err('EINVAL', `archive URL '${text}': ${why}`, code);
}

/** AWS's rules for bucket names (MinIO and Ceph RGW apply the same by default). */
export function validateBucketName(name: string, text = name): void {
  const why =
    name.length < 3 || name.length > 63 ? 'must be 3 to 63 characters' :
    !/^[a-z0-9.-]+$/.test(name) ? 'may hold only lowercase letters, digits, dots and hyphens' :
    !/^[a-z0-9].*[a-z0-9]$/.test(name) ? 'must begin and end with a letter or digit' :
    name.includes('..') ? 'may not hold two dots in a row' :
    /^\d+\.\d+\.\d+\.\d+$/.test(name) ? 'may not look like an IP address' :
    undefined;
  if (why) bad(text, `bucket name '${name}' ${why}`, 'BAD_BUCKET_NAME');
}

/** bucket and prefix from the path part of a URL ("/bucket/a/b" or "bucket/a/b") */
function bucketAndPrefix(text: string, path: string): { bucket: string; prefix: string } {
  const parts = path.replace(/^\/+/, '').replace(/\/+$/, '').split('/');
  const [rawBucket, ...rest] = parts;
  if (!rawBucket) bad(text, 'names no bucket (http(s)://host:port/BUCKET[/PREFIX] or s3://BUCKET[/PREFIX])', 'NO_BUCKET_NAME');
  validateBucketName(rawBucket, text);
  const segments = rest.map((s) => {
    let d: string;
    try {
      d = decodeURIComponent(s);
    } catch {
      bad(text, `bad percent-encoding in '${s}'`, 'BAD_ARCHIVE_PREFIX');
    }
    if (d.length === 0) bad(text, 'the prefix has an empty path component (//)', 'BAD_ARCHIVE_PREFIX');
    if (d === '.' || d === '..') bad(text, `the prefix may not hold '${d}'`, 'BAD_ARCHIVE_PREFIX');
    if (d.includes('/') || d.includes('\0')) bad(text, `bad prefix component '${s}'`, 'BAD_ARCHIVE_PREFIX');
    return d;
  });
  const prefix = segments.join('/');
  if (prefix.length > 512) bad(text, 'the prefix is longer than 512 characters', 'BAD_ARCHIVE_PREFIX');
  return { bucket: rawBucket, prefix };
}

export function parseS3Url(text: string): S3ArchiveTarget {
  const t = text.trim();
  const scheme = SCHEME_RE.exec(t)?.[1]?.toLowerCase();
  if (!scheme) bad(text, 'expected http(s)://HOST[:PORT]/BUCKET[/PREFIX] or s3://BUCKET[/PREFIX]');
  if (scheme !== 'http' && scheme !== 'https' && scheme !== 's3') bad(text, `unsupported scheme '${scheme}:' (http://, https:// or s3://)`);
  if (/[?#]/.test(t)) bad(text, 'query strings and fragments are not allowed');
  if (/\s/.test(t)) bad(text, 'white space is not allowed');
  const rest = t.slice(scheme.length + 3);
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (authority.includes('@')) {
    bad(text, 'credentials do not go in the URL: use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or --access-key / --secret-key', 'CREDENTIALS_IN_URL');
  }
  if (scheme === 's3') {
    // s3://bucket/prefix: the authority is the bucket
    const { bucket, prefix } = bucketAndPrefix(text, `${authority}${path}`);
    return { kind: 's3', bucket, prefix, endpoint: undefined, pathStyle: false, text };
  }
  if (authority.length === 0) bad(text, 'names no host');
  let url: URL;
  try {
    url = new URL(`${scheme}://${authority}`);
  } catch {
    bad(text, `bad host '${authority}'`);
  }
  if (url.port !== '' && (Number(url.port) < 1 || Number(url.port) > 65535)) bad(text, `bad port ${url.port}`);
  const { bucket, prefix } = bucketAndPrefix(text, path);
  return { kind: 's3', bucket, prefix, endpoint: `${scheme}://${url.host}`, pathStyle: true, text };
}

export function parsePosixDir(text: string, cwd = process.cwd()): PosixArchiveTarget {
  if (text.length === 0) throw err('EINVAL', 'archive directory: empty path', 'BAD_ARCHIVE_DIR');
  if (text.includes('\0')) throw err('EINVAL', 'archive directory: NUL in path', 'BAD_ARCHIVE_DIR');
  if (SCHEME_RE.test(text)) throw err('EINVAL', `archive directory '${text}' is a URL: use --s3 for S3`, 'BAD_ARCHIVE_DIR');
  return { kind: 'posix', root: resolve(cwd, text) };
}

/** `stria up --archive`: a URL with a scheme is S3, anything else a directory. */
export function parseArchiveLocation(text: string, cwd = process.cwd()): ArchiveTarget {
  return SCHEME_RE.test(text.trim()) ? parseS3Url(text) : parsePosixDir(text, cwd);
}

/** For logs: the URL or directory, never credentials (there are none in either). */
export function describeTarget(t: ArchiveTarget): string {
  return t.kind === 's3' ? t.text : t.root;
}
