// libfuse low-level callbacks. They run on a loop thread: copy what the request carries (the
// receive buffer is reused once they return, unless a write keeps it), then queue it for JS.
#include <cerrno>
#include <cstring>
#include <sys/file.h>

#include "session.h"

namespace stria {

thread_local Buf *tl_recv_buf = nullptr;
thread_local bool tl_stolen = false;
thread_local std::vector<Req *> *tl_inline_batch = nullptr;

static Session *session_of(fuse_req_t req) { return static_cast<Session *>(fuse_req_userdata(req)); }

static Req *begin(fuse_req_t req, int kind, uint64_t ino) {
  Session *s = session_of(req);
  Req *r = s->alloc_req();
  if (r == nullptr) {
    fuse_reply_err(req, ENOMEM);
    return nullptr;
  }
  const fuse_ctx *c = fuse_req_ctx(req);
  r->item.kind = kind;
  r->req = req;
  for (double &v : r->f) v = 0;
  r->f[0] = c->uid;
  r->f[1] = c->gid;
  r->f[2] = c->pid;
  r->f[3] = c->umask;
  r->u[0] = ino;
  r->u[1] = 0;
  r->size = 0;
  r->s1.clear();
  r->s2.clear();
  r->bytes.clear();
  r->buf = nullptr;
  r->timed = true;
  return r;
}

static void set_fh(Req *r, int at, const fuse_file_info *fi) {
  r->f[at] = fi != nullptr ? 1 : 0;
  r->f[at + 1] = fi != nullptr ? static_cast<double>(fi->fh) : 0;
}

static void put_lock(Req *r, const struct flock *lk) {
  r->f[5] = lk->l_type;
  r->f[6] = static_cast<double>(lk->l_start);
  // -1: to the end of the file (JS turns it into Number.MAX_SAFE_INTEGER)
  r->f[7] = lk->l_len == 0 ? -1 : static_cast<double>(lk->l_start + lk->l_len - 1);
  r->f[8] = lk->l_pid;
}

static void ll_init(void *userdata, fuse_conn_info *conn) {
  Session *s = static_cast<Session *>(userdata);
  conn->max_write = s->cfg.max_write;
  conn->max_read = s->cfg.max_read;  // must equal -o max_read
  conn->max_readahead = s->cfg.max_readahead;
  conn->max_background = s->cfg.max_background;
  conn->congestion_threshold = s->cfg.congestion_threshold;
  conn->time_gran = 1;
  // The kernel clears suid/sgid itself (a setattr reaches the filesystem), and O_TRUNC
  // arrives as setattr(size=0) instead of a flag open() would have to honour.
  conn->want &= ~(FUSE_CAP_HANDLE_KILLPRIV | FUSE_CAP_ATOMIC_O_TRUNC);
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  if (s->cfg.writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  s->init_seen = true;
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  Req *r = begin(req, K_LOOKUP, parent);
  if (!r) return;
  r->s1 = name;
  session_of(req)->submit(r);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Session *s = session_of(req);
  fuse_reply_none(req);
  auto *m = new ForgetMsg();
  m->pairs = {ino, nlookup};
  if (!s->post(&m->item)) delete m;
}

static void ll_forget_multi(fuse_req_t req, size_t count, fuse_forget_data *forgets) {
  Session *s = session_of(req);
  auto *m = new ForgetMsg();
  m->pairs.reserve(count * 2);
  for (size_t i = 0; i < count; i++) {
    m->pairs.push_back(forgets[i].ino);
    m->pairs.push_back(forgets[i].nlookup);
  }
  fuse_reply_none(req);
  if (!s->post(&m->item)) delete m;
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) {
  Req *r = begin(req, K_GETATTR, ino);
  if (!r) return;
  set_fh(r, 4, fi);
  session_of(req)->submit(r);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, fuse_file_info *fi) {
  Req *r = begin(req, K_SETATTR, ino);
  if (!r) return;
  set_fh(r, 4, fi);
  r->f[6] = to_set;
  r->f[7] = attr->st_mode;
  r->f[8] = attr->st_uid;
  r->f[9] = attr->st_gid;
  r->f[10] = static_cast<double>(attr->st_size);
  r->f[11] = static_cast<double>(attr->st_atim.tv_sec);
  r->f[12] = static_cast<double>(attr->st_atim.tv_nsec);
  r->f[13] = static_cast<double>(attr->st_mtim.tv_sec);
  r->f[14] = static_cast<double>(attr->st_mtim.tv_nsec);
  r->f[15] = static_cast<double>(attr->st_ctim.tv_sec);
  r->f[16] = static_cast<double>(attr->st_ctim.tv_nsec);
  session_of(req)->submit(r);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino) {
  Req *r = begin(req, K_READLINK, ino);
  if (!r) return;
  session_of(req)->submit(r);
}

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  Req *r = begin(req, K_MKNOD, parent);
  if (!r) return;
  r->s1 = name;
  r->f[4] = mode;
  r->f[5] = static_cast<double>(rdev);
  session_of(req)->submit(r);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  Req *r = begin(req, K_MKDIR, parent);
  if (!r) return;
  r->s1 = name;
  r->f[4] = mode;
  session_of(req)->submit(r);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  Req *r = begin(req, K_UNLINK, parent);
  if (!r) return;
  r->s1 = name;
  session_of(req)->submit(r);
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
  Req *r = begin(req, K_RMDIR, parent);
  if (!r) return;
  r->s1 = name;
  session_of(req)->submit(r);
}

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  Req *r = begin(req, K_SYMLINK, parent);
  if (!r) return;
  r->s1 = name;
  r->s2 = link;
  session_of(req)->submit(r);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname,
                      unsigned int flags) {
  Req *r = begin(req, K_RENAME, parent);
  if (!r) return;
  r->u[1] = newparent;
  r->s1 = name;
  r->s2 = newname;
  r->f[4] = flags;
  session_of(req)->submit(r);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  Req *r = begin(req, K_LINK, ino);
  if (!r) return;
  r->u[1] = newparent;
  r->s1 = newname;
  session_of(req)->submit(r);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) {
  Req *r = begin(req, K_OPEN, ino);
  if (!r) return;
  r->f[4] = fi->flags;
  session_of(req)->submit(r);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info *fi) {
  Req *r = begin(req, K_READ, ino);
  if (!r) return;
  r->size = size;
  r->f[4] = static_cast<double>(size);
  r->f[5] = static_cast<double>(off);
  r->f[6] = static_cast<double>(fi->fh);
  session_of(req)->submit(r);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off, fuse_file_info *fi) {
  Session *s = session_of(req);
  Req *r = begin(req, K_WRITE, ino);
  if (!r) return;
  r->f[4] = static_cast<double>(size);
  r->f[5] = static_cast<double>(off);
  r->f[6] = static_cast<double>(fi->fh);
  r->f[7] = fi->flags;
  Buf *b = tl_recv_buf;
  bool inside = b != nullptr && !tl_stolen && data >= b->mem && data + size <= b->mem + b->size;
  if (size >= STEAL_MIN && inside) {
    r->buf = b;
    r->f[8] = static_cast<double>(data - b->mem);
    tl_stolen = true;
  } else {
    r->bytes.assign(data, data + size);
  }
  s->submit(r);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) {
  Req *r = begin(req, K_FLUSH, ino);
  if (!r) return;
  r->u[1] = fi->lock_owner;  // POSIX locks of this owner end with the close
  r->f[4] = static_cast<double>(fi->fh);
  session_of(req)->submit(r);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) {
  Req *r = begin(req, K_RELEASE, ino);
  if (!r) return;
  r->f[4] = static_cast<double>(fi->fh);
  r->f[5] = fi->flags;
  r->f[6] = fi->flock_release ? 1 : 0;  // the flock of lock_owner ends with this release
  r->u[1] = fi->flock_release ? fi->lock_owner : 0;
  session_of(req)->submit(r);
}

static void fsync_common(fuse_req_t req, int kind, fuse_ino_t ino, int datasync, fuse_file_info *fi) {
  Req *r = begin(req, kind, ino);
  if (!r) return;
  r->f[4] = datasync ? 1 : 0;
  r->f[5] = static_cast<double>(fi->fh);
  session_of(req)->submit(r);
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info *fi) {
  fsync_common(req, K_FSYNC, ino, datasync, fi);
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) {
  Req *r = begin(req, K_OPENDIR, ino);
  if (!r) return;
  r->f[4] = fi->flags;
  session_of(req)->submit(r);
}

static void readdir_common(fuse_req_t req, int kind, fuse_ino_t ino, size_t size, off_t off, fuse_file_info *fi) {
  Req *r = begin(req, kind, ino);
  if (!r) return;
  r->size = size;
  r->f[4] = static_cast<double>(size);
  r->f[5] = static_cast<double>(off);
  r->f[6] = static_cast<double>(fi->fh);
  session_of(req)->submit(r);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info *fi) {
  readdir_common(req, K_READDIR, ino, size, off, fi);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info *fi) {
  readdir_common(req, K_READDIRPLUS, ino, size, off, fi);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) {
  Req *r = begin(req, K_RELEASEDIR, ino);
  if (!r) return;
  r->f[4] = static_cast<double>(fi->fh);
  session_of(req)->submit(r);
}

static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info *fi) {
  fsync_common(req, K_FSYNCDIR, ino, datasync, fi);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino) {
  Req *r = begin(req, K_STATFS, ino);
  if (!r) return;
  session_of(req)->submit(r);
}

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags) {
  Req *r = begin(req, K_SETXATTR, ino);
  if (!r) return;
  r->s1 = name;
  r->bytes.assign(value, value + size);
  r->f[4] = flags;
  session_of(req)->submit(r);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  Req *r = begin(req, K_GETXATTR, ino);
  if (!r) return;
  r->s1 = name;
  r->size = size;
  r->f[4] = static_cast<double>(size);
  session_of(req)->submit(r);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Req *r = begin(req, K_LISTXATTR, ino);
  if (!r) return;
  r->size = size;
  r->f[4] = static_cast<double>(size);
  session_of(req)->submit(r);
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
  Req *r = begin(req, K_REMOVEXATTR, ino);
  if (!r) return;
  r->s1 = name;
  session_of(req)->submit(r);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, fuse_file_info *fi) {
  Req *r = begin(req, K_CREATE, parent);
  if (!r) return;
  r->s1 = name;
  r->f[4] = mode;
  r->f[5] = fi->flags;
  session_of(req)->submit(r);
}

static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, fuse_file_info *fi) {
  Req *r = begin(req, K_FALLOCATE, ino);
  if (!r) return;
  r->f[4] = mode;
  r->f[5] = static_cast<double>(offset);
  r->f[6] = static_cast<double>(length);
  r->f[7] = static_cast<double>(fi->fh);
  session_of(req)->submit(r);
}

static void ll_getlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi, struct flock *lock) {
  Req *r = begin(req, K_GETLK, ino);
  if (!r) return;
  r->u[1] = fi->lock_owner;
  r->f[4] = static_cast<double>(fi->fh);
  put_lock(r, lock);
  session_of(req)->submit(r);
}

static void ll_setlk(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi, struct flock *lock, int sleep) {
  Req *r = begin(req, K_SETLK, ino);
  if (!r) return;
  r->u[1] = fi->lock_owner;
  r->f[4] = static_cast<double>(fi->fh);
  put_lock(r, lock);
  r->f[9] = sleep ? 1 : 0;
  // A blocking lock legitimately waits for another holder: only a signal ends the wait.
  r->timed = !sleep;
  session_of(req)->submit(r);
}

static void ll_flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi, int op) {
  Req *r = begin(req, K_FLOCK, ino);
  if (!r) return;
  r->u[1] = fi->lock_owner;
  r->f[4] = static_cast<double>(fi->fh);
  r->f[5] = op;
  r->timed = (op & LOCK_NB) != 0 || (op & LOCK_UN) != 0;
  session_of(req)->submit(r);
}

fuse_lowlevel_ops make_ops(uint32_t optional) {
  fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof ops);
  ops.init = ll_init;
  ops.lookup = ll_lookup;
  if (optional & HAS_FORGET) {
    ops.forget = ll_forget;
    ops.forget_multi = ll_forget_multi;
  }
  ops.getattr = ll_getattr;
  ops.setattr = ll_setattr;
  ops.readlink = ll_readlink;
  ops.mknod = ll_mknod;
  ops.mkdir = ll_mkdir;
  ops.unlink = ll_unlink;
  ops.rmdir = ll_rmdir;
  ops.symlink = ll_symlink;
  ops.rename = ll_rename;
  ops.link = ll_link;
  ops.open = ll_open;
  ops.read = ll_read;
  ops.write = ll_write;
  if (optional & HAS_FLUSH) ops.flush = ll_flush;
  ops.release = ll_release;
  if (optional & HAS_FSYNC) ops.fsync = ll_fsync;
  if (optional & HAS_OPENDIR) ops.opendir = ll_opendir;
  ops.readdir = ll_readdir;
  ops.readdirplus = ll_readdirplus;
  if (optional & HAS_RELEASEDIR) ops.releasedir = ll_releasedir;
  if (optional & HAS_FSYNCDIR) ops.fsyncdir = ll_fsyncdir;
  ops.statfs = ll_statfs;
  ops.setxattr = ll_setxattr;
  ops.getxattr = ll_getxattr;
  ops.listxattr = ll_listxattr;
  ops.removexattr = ll_removexattr;
  ops.create = ll_create;
  if (optional & HAS_FALLOCATE) ops.fallocate = ll_fallocate;
  if (optional & HAS_GETLK) ops.getlk = ll_getlk;
  if (optional & HAS_SETLK) ops.setlk = ll_setlk;
  if (optional & HAS_FLOCK) ops.flock = ll_flock;
  return ops;
}

}  // namespace stria
