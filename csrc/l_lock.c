/* core.lock_file(path) -> lock | nil, message, holder_pid: the output lock of
 * `llmrelay batch`. An exclusive flock(2) on a lock file next to the output,
 * holding the holder's pid in decimal: a second run finds it held and names
 * that pid; a run killed by SIGKILL loses its flock with its last fd, so the
 * next run simply takes the file over. lock:release() removes the file
 * while still holding the lock and closes it; a run that took an inode a
 * releaser had already unlinked sees the path no longer names it and tries
 * again, so two runs never both hold "the" lock. */
#include "compat.h"
#include "l_common.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_MT "llmrelay.lock"
#define LOCK_TRIES 20

typedef struct {
  int fd;            /* -1 once released */
  char path[4096];
} lr_lock;

/* The pid written in the lock file fd, or 0 when it holds none (yet). */
static long holder_pid(int fd) {
  char buf[32];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = '\0';
  long pid = 0;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) pid = pid * 10 + (buf[i] - '0');
  return pid;
}

static int push_errno(lua_State *L, const char *what, const char *path) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", what, path, strerror(errno));
  return 2;
}

static int l_lock_file(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  lr_lock *lk = lrl_new_object(L, sizeof *lk, LOCK_MT);
  lk->fd = -1; /* "closed" until it holds the lock: __gc is then harmless */
  if (len >= sizeof lk->path) return luaL_argerror(L, 1, "path too long");
  memcpy(lk->path, path, len + 1);
  for (int tries = 0; tries < LOCK_TRIES; tries++) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return push_errno(L, "cannot open lock file", path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      if (e != EWOULDBLOCK && e != EINTR) {
        close(fd);
        errno = e;
        return push_errno(L, "cannot lock", path);
      }
      long pid = 0;
      /* the holder writes its pid right after taking the lock: give it a moment */
      for (int i = 0; i < 50 && (pid = holder_pid(fd)) == 0; i++) usleep(2000);
      close(fd);
      lua_pushnil(L);
      lua_pushstring(L, "locked");
      if (pid > 0) lua_pushinteger(L, (lua_Integer)pid);
      else lua_pushnil(L);
      return 3;
    }
    struct stat a, b;
    if (fstat(fd, &a) != 0 || stat(path, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
      close(fd); /* a releaser unlinked this inode after we opened it: the path is free again */
      continue;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
      int e = errno;
      close(fd);
      errno = e;
      return push_errno(L, "cannot write lock file", path);
    }
    lk->fd = fd;
    return 1;
  }
  lua_pushnil(L);
  lua_pushfstring(L, "cannot lock %s: it kept being replaced", path);
  return 2;
}

/* lock:release(): removes the file (still locked, so no one else holds it) and unlocks. */
static int l_lock_release(lua_State *L) {
  lr_lock *lk = luaL_checkudata(L, 1, LOCK_MT);
  if (lk->fd >= 0) {
    unlink(lk->path);
    close(lk->fd);
    lk->fd = -1;
  }
  return 0;
}

/* __gc: the lock ends with the object; the file stays (the next run takes it over). */
static int l_lock_gc(lua_State *L) {
  lr_lock *lk = luaL_checkudata(L, 1, LOCK_MT);
  if (lk->fd >= 0) close(lk->fd);
  lk->fd = -1;
  return 0;
}

void lr_lock_open(lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", l_lock_gc}, {NULL, NULL}};
  static const luaL_Reg methods[] = {{"release", l_lock_release}, {NULL, NULL}};
  lrl_register_class(L, LOCK_MT, meta, methods);
  lua_pushcfunction(L, l_lock_file);
  lua_setfield(L, -2, "lock_file");
}
