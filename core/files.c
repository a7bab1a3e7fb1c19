/* core/files.c: opening a user's file for reading without trusting what
 * the path names. A FIFO would block the open or the read until a writer
 * comes, a device such as /dev/zero never ends, a directory is no file:
 * every reader of checkpoints, configs and models opens through here, which
 * refuses anything but a regular file before a byte is read. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

FILE *mn_fopen_regular(const char *path, const char *what)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);   /* a FIFO opens at once */
    if (fd < 0) {
        mn__error(MN_ERR_IO, "%s %s: %s", what, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    const char *why = fstat(fd, &st) != 0 ? strerror(errno) : !S_ISREG(st.st_mode) ? "not a regular file" : NULL;
    if (!why && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) why = strerror(errno);
    FILE *f = why ? NULL : fdopen(fd, "rb");
    if (!f) {
        mn__error(MN_ERR_IO, "%s %s: %s", what, path, why ? why : strerror(errno));
        close(fd);
    }
    return f;
}
