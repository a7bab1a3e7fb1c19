/* tools/text.h: character-level text data for the language models: bytes of
 * one or more files mapped to a dense vocabulary. */
#ifndef MN_TOOLS_TEXT_H
#define MN_TOOLS_TEXT_H

#include "mnemo.h"

typedef struct {
    int32_t *ids;          /* the text as vocabulary ids */
    int64_t n;
    int vocab;             /* distinct bytes */
    unsigned char chars[256];  /* id -> byte */
    int16_t index[256];    /* byte -> id, -1 if absent */
} mn_text;

/* Reads the files (NUL-terminated list of paths); fortune files' "%" lines
 * become blank lines. MN_ERR_IO / MN_ERR_FORMAT (empty) on failure. */
mn_status mn_text_load(const char *const *paths, mn_text *t);
mn_status mn_text_from_bytes(const char *buf, size_t len, mn_text *t);
/* The King James text from `bible` (bible-kjv), verse references stripped. */
mn_status mn_text_kjv(mn_text *t);
/* Sets ids from an existing vocabulary (bytes outside it map to id 0). */
mn_status mn_text_encode(const mn_text *vocab, const char *s, int32_t *out, int64_t n);
void      mn_text_free(mn_text *t);

#define MN_FORTUNES_DIR "/usr/share/games/fortunes"

#endif
