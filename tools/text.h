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
 * become blank lines. MN_ERR_IO for a missing file or one that is not a
 * regular file (directory, device, pipe); MN_ERR_FORMAT for a NUL byte or
 * no characters at all. */
mn_status mn_text_load(const char *const *paths, mn_text *t);
mn_status mn_text_from_bytes(const char *buf, size_t len, mn_text *t);
/* The King James text from `bible` (bible-kjv), verse references stripped. */
mn_status mn_text_kjv(mn_text *t);
/* The id that bytes outside a vocabulary map to: the space's if the
 * vocabulary has one, else id 0 (the vocabulary's lowest byte). */
int       mn_text_unknown_id(const mn_text *vocab);
/* Sets ids from an existing vocabulary; returns how many bytes were
 * outside it (mapped to mn_text_unknown_id). */
int64_t   mn_text_encode(const mn_text *vocab, const char *s, int32_t *out, int64_t n);
/* Re-encodes t with another vocabulary (a checkpoint's) and takes that
 * vocabulary; returns how many characters were outside it. */
int64_t   mn_text_reencode(mn_text *t, const mn_text *vocab);
void      mn_text_free(mn_text *t);

#define MN_FORTUNES_DIR "/usr/share/games/fortunes"

#endif
