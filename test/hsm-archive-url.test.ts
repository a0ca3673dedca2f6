/**
 * `--s3 URL`, `--posix DIR` and `stria up --archive X`: what each form means and the
 * one-line EINVAL errors (with stable codes) for everything else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StriaError } from '../src/common/errno.js';
import { parseArchiveLocation, parsePosixDir, parseS3Url, validateBucketName } from '../src/hsm/archive-url.js';

function refused(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof StriaError, String(e));
    assert.equal(e.errno, 22, 'EINVAL');
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

test('http(s)://host:port/bucket[/prefix] is an endpoint with path-style addressing', () => {
  assert.deepEqual(parseS3Url('http://minio:9000/stria-archive'), {
    kind: 's3', bucket: 'stria-archive', prefix: '', endpoint: 'http://minio:9000', pathStyle: true, text: 'http://minio:9000/stria-archive',
  });
  const t = parseS3Url('https://s3.example.org/bkt/site/a/');
  assert.equal(t.endpoint, 'https://s3.example.org');
  assert.equal(t.bucket, 'bkt');
  assert.equal(t.prefix, 'site/a', 'no trailing slash');
  assert.equal(parseS3Url('HTTP://127.0.0.1:4568/b-1.x/p%20q').prefix, 'p q', 'percent-decoded prefix');
  assert.equal(parseS3Url('http://[::1]:9000/bucket').endpoint, 'http://[::1]:9000');
});

test('s3://bucket[/prefix] is AWS with virtual-hosted addressing', () => {
  assert.deepEqual(parseS3Url('s3://my.bucket-1/cold/data'), {
    kind: 's3', bucket: 'my.bucket-1', prefix: 'cold/data', endpoint: undefined, pathStyle: false, text: 's3://my.bucket-1/cold/data',
  });
  assert.equal(parseS3Url('s3://abc').prefix, '');
});

test('bad S3 URLs are refused with a reason', () => {
  refused(() => parseS3Url('minio:9000/bucket'), 'BAD_ARCHIVE_URL', /expected http/);
  refused(() => parseS3Url('ftp://host/bucket'), 'BAD_ARCHIVE_URL', /unsupported scheme 'ftp:'/);
  refused(() => parseS3Url('http://host:9000'), 'NO_BUCKET_NAME');
  refused(() => parseS3Url('http://host:9000/'), 'NO_BUCKET_NAME');
  refused(() => parseS3Url('s3://'), 'NO_BUCKET_NAME');
  refused(() => parseS3Url('http:///bucket'), 'BAD_ARCHIVE_URL', /no host/);
  refused(() => parseS3Url('http://host:99999/bucket'), 'BAD_ARCHIVE_URL');
  refused(() => parseS3Url('http://host:0/bucket'), 'BAD_ARCHIVE_URL', /port/);
  refused(() => parseS3Url('http://key:secret@host/bucket'), 'CREDENTIALS_IN_URL', /AWS_ACCESS_KEY_ID/);
  refused(() => parseS3Url('http://host/bucket?versionId=1'), 'BAD_ARCHIVE_URL', /query/);
  refused(() => parseS3Url('http://host/bucket#x'), 'BAD_ARCHIVE_URL');
  refused(() => parseS3Url('http://host/bucket/a//b'), 'BAD_ARCHIVE_PREFIX', /empty/);
  refused(() => parseS3Url('http://host/bucket/../other'), 'BAD_ARCHIVE_PREFIX');
  refused(() => parseS3Url('http://host/bucket/a/%2e%2e'), 'BAD_ARCHIVE_PREFIX');
  refused(() => parseS3Url('http://host/bucket/a%2Fb'), 'BAD_ARCHIVE_PREFIX');
  refused(() => parseS3Url('http://host/bucket/%zz'), 'BAD_ARCHIVE_PREFIX', /percent/);
  refused(() => parseS3Url('http://host/Bucket'), 'BAD_BUCKET_NAME', /lowercase/);
  refused(() => parseS3Url('s3://ab'), 'BAD_BUCKET_NAME', /3 to 63/);
});

test('bucket names follow S3 rules', () => {
  for (const ok of ['abc', 'stria-archive', 'a.b.c', '0bucket9', 'x'.repeat(63)]) validateBucketName(ok);
  for (const bad of ['ab', 'x'.repeat(64), 'under_score', '-lead', 'trail-', 'a..b', '192.168.1.1', 'UPPER']) {
    refused(() => validateBucketName(bad), 'BAD_BUCKET_NAME');
  }
});

test('--posix DIR is an absolute directory; URLs and empty paths are refused', () => {
  assert.deepEqual(parsePosixDir('/srv/archive'), { kind: 'posix', root: '/srv/archive' });
  assert.deepEqual(parsePosixDir('arch', '/work'), { kind: 'posix', root: '/work/arch' });
  refused(() => parsePosixDir(''), 'BAD_ARCHIVE_DIR');
  refused(() => parsePosixDir('s3://bucket'), 'BAD_ARCHIVE_DIR', /--s3/);
});

test('stria up --archive: a URL with a scheme is S3, anything else a directory', () => {
  assert.equal(parseArchiveLocation('http://127.0.0.1:9000/arch').kind, 's3');
  assert.equal(parseArchiveLocation('s3://bucket/p').kind, 's3');
  assert.deepEqual(parseArchiveLocation('./archive', '/data'), { kind: 'posix', root: '/data/archive' });
  assert.deepEqual(parseArchiveLocation('minio:9000/x', '/d'), { kind: 'posix', root: '/d/minio:9000/x' });
  refused(() => parseArchiveLocation('file:///tmp/x'), 'BAD_ARCHIVE_URL', /unsupported scheme/);
});
