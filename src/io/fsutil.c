/* fsutil.c: atomic file output (temp file in the destination directory, fsync, rename) and
 * mkdir -p. Every file the engine writes (images, converted weights) goes through
 * cg_write_file_atomic, or cg_atomic_begin/commit for files written in pieces (GIFs, MP4s),
 * so a crash or a full disk never leaves a half-written file under the final name. A
 * symlink at the destination is replaced by the new file, not written through, which is
 * what rename() gives and what an "output file" should mean. */
#include "io/image.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "status.h"

/* Creates `path` and its parents. On failure returns the errno and leaves in `path` the
 * prefix that could not be created (the string is modified temporarily while walking). */
static int mkdir_parents(char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') path[--n] = '\0';
    if (n == 0) return 0;
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0777) != 0) {
            int err = errno;
            struct stat st;
            /* EEXIST alone is not enough: a regular file of that name must fail. */
            if (err == EEXIST) {
                if (stat(path, &st) != 0) return errno;
                if (!S_ISDIR(st.st_mode)) return ENOTDIR;
            } else if (err == EACCES || err == EPERM || err == EROFS) {
                /* An existing directory we may not write into is fine to pass through. */
                if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return err;
            } else {
                return err;
            }
        }
        if (saved == '\0') return 0;
        *p = saved;
        while (p[1] == '/') p++;
    }
}

cg_status cg_mkdir_p(const char *path) {
    if (!path || !*path) return cg_fail(CG_ERR_ARG, "cg_mkdir_p: empty path");
    char *buf = strdup(path);
    if (!buf) return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    int err = mkdir_parents(buf);
    cg_status s = CG_OK;
    if (err) s = cg_fail(CG_ERR_IO, "%s: cannot create directory: %s", buf, strerror(err));
    free(buf);
    return s;
}

/* The process umask, without the umask(0)/umask(old) dance that would race with other
 * threads creating files. */
static mode_t current_umask(void) {
    mode_t mask = 022;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return mask;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned int m;
        if (sscanf(line, "Umask: %o", &m) == 1) {
            mask = (mode_t)m;
            break;
        }
    }
    fclose(f);
    return mask;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

cg_status cg_write_file_atomic(const char *path, const void *data, size_t n) {
    if (!path || !*path) return cg_fail(CG_ERR_ARG, "cg_write_file_atomic: empty path");
    if (!data && n) return cg_fail(CG_ERR_ARG, "%s: no data to write", path);
    size_t len = strlen(path);
    if (path[len - 1] == '/') return cg_fail(CG_ERR_ARG, "%s: is a directory name", path);

    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    /* Long names are cut in the temp name so that adding the suffix cannot hit NAME_MAX. */
    size_t baselen = strlen(base) > 200 ? 200 : strlen(base);
    char *dir = malloc(dirlen + 2);
    char *tmp = malloc(dirlen + baselen + 32);
    if (!dir || !tmp) {
        free(dir);
        free(tmp);
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    }
    if (slash && dirlen == 0) strcpy(dir, "/");
    else if (slash) memcpy(dir, path, dirlen), dir[dirlen] = '\0';
    else strcpy(dir, ".");
    snprintf(tmp, dirlen + baselen + 32, "%s/.%.*s.tmp-XXXXXX", dir, (int)baselen, base);

    cg_status s = CG_OK;
    int fd = -1;
    int err = mkdir_parents(dir);
    if (err) {
        s = cg_fail(CG_ERR_IO, "%s: cannot create directory %s: %s", path, dir, strerror(err));
        goto done;
    }
    /* mkostemp is mkstemp plus O_CLOEXEC, so a fork elsewhere cannot inherit the fd. */
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        s = cg_fail(CG_ERR_IO, "%s: cannot create a file in %s: %s", path, dir, strerror(errno));
        goto done;
    }
    flock(fd, LOCK_EX); /* "being written": see cg_clean_stale_temps */
    /* mkstemp makes the file 0600; give it the mode a plain open(..., 0666) would have. */
    if (fchmod(fd, 0666 & ~current_umask()) != 0 || (err = write_all(fd, data, n)) != 0 ||
        fsync(fd) != 0) {
        if (!err) err = errno;
        s = cg_fail(CG_ERR_IO, "%s: cannot write: %s", path, strerror(err));
        goto fail;
    }
    /* close() can report a deferred write error (NFS, quota), so it is checked too. */
    err = close(fd) != 0 ? errno : 0;
    fd = -1;
    if (err) {
        s = cg_fail(CG_ERR_IO, "%s: cannot write: %s", path, strerror(err));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        s = cg_fail(CG_ERR_IO, "%s: cannot rename the temporary file into place: %s", path,
                    strerror(errno));
        goto fail;
    }
    /* Persist the rename itself; failure here cannot be undone and is not reported. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    goto done;
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
done:
    free(dir);
    free(tmp);
    return s;
}

/* ---- files written piece by piece ---- */

cg_status cg_atomic_begin(cg_atomic_file *f, const char *path) {
    f->path = f->tmp = NULL;
    f->fd = -1;
    if (!path || !*path) return cg_fail(CG_ERR_ARG, "cg_atomic_begin: empty path");
    size_t len = strlen(path);
    if (path[len - 1] == '/') return cg_fail(CG_ERR_ARG, "%s: is a directory name", path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    size_t baselen = strlen(base) > 200 ? 200 : strlen(base); /* see cg_write_file_atomic */
    char *dir = malloc(dirlen + 2);
    f->path = strdup(path);
    f->tmp = malloc(dirlen + baselen + 32);
    if (!dir || !f->path || !f->tmp) {
        free(dir);
        free(f->path);
        free(f->tmp);
        f->path = f->tmp = NULL;
        return cg_fail(CG_ERR_NOMEM, "%s: out of memory", path);
    }
    if (slash && dirlen == 0) strcpy(dir, "/");
    else if (slash) memcpy(dir, path, dirlen), dir[dirlen] = '\0';
    else strcpy(dir, ".");
    snprintf(f->tmp, dirlen + baselen + 32, "%s/.%.*s.tmp-XXXXXX", dir, (int)baselen, base);
    cg_status s = CG_OK;
    int err = mkdir_parents(dir);
    if (err) {
        s = cg_fail(CG_ERR_IO, "%s: cannot create directory %s: %s", path, dir, strerror(err));
    } else if ((f->fd = mkostemp(f->tmp, O_CLOEXEC)) < 0) {
        s = cg_fail(CG_ERR_IO, "%s: cannot create a file in %s: %s", path, dir, strerror(errno));
    } else if (flock(f->fd, LOCK_EX), fchmod(f->fd, 0666 & ~current_umask()) != 0) {
        s = cg_fail(CG_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        close(f->fd);
        f->fd = -1;
        unlink(f->tmp);
    }
    free(dir);
    if (s != CG_OK) {
        free(f->path);
        free(f->tmp);
        f->path = f->tmp = NULL;
    }
    return s;
}

cg_status cg_atomic_commit(cg_atomic_file *f) {
    if (!f->tmp) return cg_fail(CG_ERR_ARG, "cg_atomic_commit: no file begun");
    /* fsync through any descriptor flushes the file, including what another library
     * wrote through its own (libavformat); a caller that closed fd gets it reopened. */
    int fd = f->fd >= 0 ? f->fd : open(f->tmp, O_RDONLY | O_CLOEXEC);
    f->fd = -1;
    int err = fd < 0 ? errno : fsync(fd) != 0 ? errno : 0;
    if (fd >= 0 && close(fd) != 0 && !err) err = errno;
    if (!err && rename(f->tmp, f->path) != 0) err = errno;
    if (err) {
        cg_status s = cg_fail(CG_ERR_IO, "%s: cannot write: %s", f->path, strerror(err));
        cg_atomic_abort(f);
        return s;
    }
    char *slash = strrchr(f->path, '/');
    if (slash) *slash = '\0';
    int dfd = open(!slash ? "." : slash == f->path ? "/" : f->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(f->path);
    free(f->tmp);
    f->path = f->tmp = NULL;
    return CG_OK;
}

void cg_atomic_abort(cg_atomic_file *f) {
    if (f->fd >= 0) close(f->fd);
    if (f->tmp) unlink(f->tmp);
    free(f->path);
    free(f->tmp);
    f->path = f->tmp = NULL;
    f->fd = -1;
}

/* ---- leftovers of killed writers ---- */

/* Whether `name` is a temporary name of ours: ".<name>.tmp-" and mkstemp's six letters. */
static int is_temp_name(const char *name) {
    size_t n = strlen(name);
    if (n < 13 || name[0] != '.' || memcmp(name + n - 11, ".tmp-", 5) != 0) return 0;
    for (size_t i = n - 6; i < n; i++)
        if (!isalnum((unsigned char)name[i])) return 0;
    return 1;
}

int cg_clean_stale_temps(const char *dir, int min_age_s) {
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) return 0;
    int removed = 0;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_temp_name(e->d_name)) continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat st;
        /* A writer holds an exclusive lock on its temporary file from creation to rename,
         * and the kernel drops it when the writer dies, however it dies; the age test
         * covers the moments a live writer holds no lock (between close and rename, or a
         * file reopened by name to be written by another library). */
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime >= min_age_s &&
            flock(fd, LOCK_EX | LOCK_NB) == 0 && unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
        close(fd);
    }
    closedir(d);
    return removed;
}
