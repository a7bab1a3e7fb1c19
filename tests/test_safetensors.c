/* tests/test_safetensors.c: the checkpoint format. Round trips, the known
 * header layout, byte-identical re-saves, and every malformation rejected
 * with a clear error while the store stays exactly as it was. */
#include "harness.h"
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static const char *path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static void write_file(const char *p, const void *data, size_t n)
{
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static unsigned char *read_file(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    ck_assert_int_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* A file with the given header JSON (padded) and `data` bytes of payload. */
static void write_st(const char *p, const char *json, size_t data, long long hdr_len_override)
{
    size_t n = strlen(json), pad = (n + 7) / 8 * 8;
    unsigned char *b = calloc(1, 8 + pad + data);
    unsigned long long len = hdr_len_override >= 0 ? (unsigned long long)hdr_len_override : pad;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(len >> (8 * i));
    memcpy(b + 8, json, n);
    memset(b + 8 + n, ' ', pad - n);
    write_file(p, b, 8 + pad + data);
    free(b);
}

static mn_params *sample_store(void)
{
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 3);
    mn_params_create(P, "enc.weight", MN_SHAPE(4, 3), (mn_init){ .kind = MN_INIT_NORMAL, .b = 1 });
    mn_params_create(P, "enc.bias", MN_SHAPE(4), (mn_init){ .kind = MN_INIT_UNIFORM, .a = -1, .b = 1 });
    mn_params_create(P, "scalar", MN_SCALAR, (mn_init){ .kind = MN_INIT_CONSTANT, .a = 7 });
    mn_params_create_state(P, "enc.weight.exp_avg", MN_SHAPE(4, 3));
    mn_f32(mn_params_get(P, "enc.weight.exp_avg"))[5] = 0.5f;
    mn_params_set_meta(P, "mnemo.model", "test");
    return P;
}

START_TEST(round_trip)
{
    mn_params *P = sample_store(), *Q = mn_params_new();
    ck_assert_ok(mn_params_save(P, path("a.safetensors")));
    ck_assert_ok(mn_params_load(Q, path("a.safetensors")));
    ck_assert_int_eq(mn_params_count(Q), 4);
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(mn_params_name(Q, i), mn_params_name(P, i));
        mn_tensor *a = mn_params_value(P, i), *b = mn_params_value(Q, i);
        ck_assert(mn_shape_eq(a->shape, b->shape));
        ck_assert_int_eq(memcmp(a->data, b->data, mn_tensor_bytes(a)), 0);
        ck_assert_int_eq(mn_params_grad(P, i) != NULL, mn_params_grad(Q, i) != NULL);  /* state stays state */
    }
    ck_assert_str_eq(mn_params_get_meta(Q, "mnemo.model"), "test");
    ck_assert(mn_f32(mn_params_get(Q, "scalar"))[0] == 7.0f);
    /* loading into a store that has the tensors overwrites values in place */
    mn_f32(mn_params_get(P, "enc.bias"))[0] = 123.0f;
    ck_assert_ok(mn_params_load(P, path("a.safetensors")));
    ck_assert(mn_f32(mn_params_get(P, "enc.bias"))[0] == mn_f32(mn_params_get(Q, "enc.bias"))[0]);
    ck_assert_int_eq(mn_params_count(P), 4);
    mn_params_free(P); mn_params_free(Q);
}
END_TEST

START_TEST(known_header_layout)
{
    mn_params *P = mn_params_new();
    mn_params_create(P, "attn.0", MN_SHAPE(1, 2, 3), (mn_init){ .kind = MN_INIT_ONES });
    ck_assert_ok(mn_params_save(P, path("k.safetensors")));
    size_t n;
    unsigned char *b = read_file(path("k.safetensors"), &n);
    const char *want = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
    unsigned long long len = 0;
    for (int i = 7; i >= 0; i--) len = (len << 8) | b[i];
    ck_assert_uint_eq(len, 64);
    ck_assert_uint_eq(n, 8 + 64 + 24);
    ck_assert_int_eq(memcmp(b + 8, want, strlen(want)), 0);
    for (size_t i = 8 + strlen(want); i < 72; i++) ck_assert_int_eq(b[i], ' ');
    float one = 1.0f;
    ck_assert_int_eq(memcmp(b + 72, &one, 4), 0);
    free(b);
    mn_params_free(P);
}
END_TEST

START_TEST(resave_is_byte_identical)
{
    mn_params *P = sample_store(), *Q = mn_params_new();
    ck_assert_ok(mn_params_save(P, path("r1.safetensors")));
    ck_assert_ok(mn_params_load(Q, path("r1.safetensors")));
    ck_assert_ok(mn_params_save(Q, path("r2.safetensors")));
    size_t n1, n2;
    unsigned char *a = read_file(path("r1.safetensors"), &n1), *b = read_file(path("r2.safetensors"), &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_int_eq(memcmp(a, b, n1), 0);
    free(a); free(b);
    mn_params_free(P); mn_params_free(Q);
}
END_TEST

START_TEST(save_leaves_no_temporary_and_replaces_atomically)
{
    mn_params *P = sample_store();
    ck_assert_ok(mn_params_save(P, path("t.safetensors")));
    ck_assert_ok(mn_params_save(P, path("t.safetensors")));
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path("t.safetensors"), (long)getpid());
    ck_assert_int_ne(access(tmp, F_OK), 0);
    ck_assert_int_eq(mn_params_save(P, "/nonexistent-dir/x.safetensors"), MN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "/nonexistent-dir/x.safetensors"));
    mn_params_free(P);
}
END_TEST

START_TEST(save_never_replaces_a_non_regular_file)
{
    mn_params *P = sample_store();
    struct stat st;
    ck_assert_int_eq(mkfifo(path("fifo"), 0600), 0);
    ck_assert_int_eq(symlink("elsewhere.safetensors", path("link")), 0);
    ck_assert_int_eq(mn_params_save(P, path("fifo")), MN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "not a regular file"));
    ck_assert_int_eq(mn_params_save(P, path("link")), MN_ERR_IO);
    ck_assert_int_eq(lstat(path("fifo"), &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    ck_assert_int_eq(lstat(path("link"), &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    unlink(path("fifo"));
    unlink(path("link"));
    mn_params_free(P);
}
END_TEST

/* A link planted at the name of the save's temporary is replaced, never
 * written through: the file it points at keeps its bytes. */
START_TEST(save_never_writes_through_a_planted_temporary)
{
    mn_params *P = sample_store();
    char victim[600], tmp[600];
    snprintf(victim, sizeof victim, "%s", path("victim.txt"));
    write_file(victim, "keep me\n", 8);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path("p.safetensors"), (long)getpid());
    ck_assert_int_eq(symlink(victim, tmp), 0);
    ck_assert_ok(mn_params_save(P, path("p.safetensors")));
    size_t n = 0;
    unsigned char *v = read_file(victim, &n);
    ck_assert_uint_eq(n, 8);
    ck_assert_int_eq(memcmp(v, "keep me\n", 8), 0);
    free(v);
    mn_params *Q = mn_params_new();
    ck_assert_ok(mn_params_load(Q, path("p.safetensors")));
    mn_params_free(Q);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    unlink(victim);
    mn_params_free(P);
}
END_TEST

/* Each malformed file: expected status and a fragment of the message. */
typedef struct { const char *json; size_t data; long long hlen; mn_status want; const char *msg; } bad_case;

static const bad_case bad[] = {
    { "{}", 0, 1000, MN_ERR_FORMAT, "header length" },                                   /* longer than the file */
    { "{}", 0, 200000000, MN_ERR_FORMAT, "header length" },                              /* over 100 MB */
    { "{\"a\":{\"dtype\":\"F32\",", 0, -1, MN_ERR_FORMAT, "JSON" },                       /* syntax */
    { "[1,2]", 0, -1, MN_ERR_FORMAT, "not a JSON object" },
    { "{\"a\":{\"dtype\":\"Q8\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, -1, MN_ERR_FORMAT, "unknown dtype" },
    { "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, -1, MN_ERR_UNSUPPORTED, "F16" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, -1, MN_ERR_FORMAT, "bad dim" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, -1, MN_ERR_FORMAT, "bad dim" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, -1, MN_ERR_FORMAT, "data_offsets" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12, -1, MN_ERR_FORMAT, "bytes for 2" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, -1, MN_ERR_FORMAT, "contiguous" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, -1, MN_ERR_FORMAT, "contiguous" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, -1, MN_ERR_FORMAT, "data bytes" },     /* truncated */
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, -1, MN_ERR_FORMAT, "data bytes" },    /* trailing */
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, -1, MN_ERR_FORMAT, "duplicate" },
    { "{\"__metadata__\":{\"k\":3}}", 0, -1, MN_ERR_FORMAT, "not a string" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, -1, MN_ERR_FORMAT, "data_offsets" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, -1, MN_ERR_FORMAT, "dims" },
    /* element counts whose product wraps to 0 (2^64) or to a small number: refused before multiplying */
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0, -1, MN_ERR_FORMAT, "too large" },
    { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,16777217],\"data_offsets\":[0,4]}}", 4, -1, MN_ERR_FORMAT, "too large" },
};

/* A file that lacks a parameter of the model: loaded into a strict store,
 * the graph names the missing tensor instead of initialising it, and
 * mn_params_match against the model built from scratch lists it. */
START_TEST(strict_load_names_missing_tensors)
{
    mn_params *P = mn_params_new(), *model = mn_params_new(), *Q = mn_params_new();
    ck_assert_ok(mn_params_create(P, "fc.weight", MN_SHAPE(3, 2), (mn_init){ .kind = MN_INIT_ONES }));
    ck_assert_ok(mn_params_save(P, path("nobias.safetensors")));
    ck_assert_ok(mn_params_load(Q, path("nobias.safetensors")));
    mn_graph *g = mn_graph_new(model);
    ck_assert_ptr_nonnull(mn_linear(g, "fc", mn_input(g, "x", MN_F32, MN_SHAPE(4, 2)), 3, true));
    ck_assert_int_eq(mn_params_match(Q, model), MN_ERR_NOTFOUND);
    ck_assert_str_eq(mn_errmsg(), "1 parameter of the model is missing: fc.bias");
    mn_params_set_strict(Q, true);
    mn_graph *h = mn_graph_new(Q);
    ck_assert_ptr_null(mn_linear(h, "fc", mn_input(h, "x", MN_F32, MN_SHAPE(4, 2)), 3, true));
    ck_assert_ptr_nonnull(strstr(mn_graph_errmsg(h), "\"fc.bias\" is not in the loaded store"));
    ck_assert_int_eq(mn_params_count(Q), 1);
    mn_graph_free(g); mn_graph_free(h);
    mn_params_free(P); mn_params_free(model); mn_params_free(Q);
}
END_TEST

START_TEST(malformed_files_rejected)
{
    const bad_case *b = &bad[_i];
    mn_params *P = sample_store();
    float before = mn_f32(mn_params_get(P, "enc.bias"))[2];
    write_st(path("bad.safetensors"), b->json, b->data, b->hlen);
    mn_status s = mn_params_load(P, path("bad.safetensors"));
    ck_assert_msg(s == b->want, "case %d: got %s (%s)", _i, mn_status_name(s), mn_errmsg());
    ck_assert_msg(strstr(mn_errmsg(), b->msg) != NULL, "case %d: message \"%s\" lacks \"%s\"", _i, mn_errmsg(), b->msg);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "bad.safetensors"));
    ck_assert_int_eq(mn_params_count(P), 4);
    ck_assert(mn_f32(mn_params_get(P, "enc.bias"))[2] == before);
    mn_params_free(P);
    mn_params *M = mn_params_new();                 /* the header-only load checks alike */
    s = mn_params_load_meta(M, path("bad.safetensors"));
    if (b->want != MN_ERR_SHAPE)                    /* a shape against the store: only a full load compares */
        ck_assert_msg(s == b->want, "case %d: metadata load got %s (%s)", _i, mn_status_name(s), mn_errmsg());
    ck_assert_int_eq(mn_params_count(M), 0);
    mn_params_free(M);
}
END_TEST

/* `mnemo train --resume` reads the model kind from a checkpoint's
 * metadata before the run opens it: the header alone, no tensor. */
START_TEST(metadata_alone_reads_no_tensor)
{
    mn_params *P = sample_store(), *M = mn_params_new();
    ck_assert_ok(mn_params_save(P, path("m.safetensors")));
    ck_assert_ok(mn_params_load_meta(M, path("m.safetensors")));
    ck_assert_int_eq(mn_params_count(M), 0);
    ck_assert_str_eq(mn_params_get_meta(M, "mnemo.model"), "test");
    ck_assert_int_eq(mn_params_load_meta(M, path("missing.safetensors")), MN_ERR_IO);
    mn_params_free(P); mn_params_free(M);
}
END_TEST

START_TEST(short_and_missing_files)
{
    mn_params *P = mn_params_new();
    write_file(path("short.safetensors"), "\x08\x00\x00", 3);
    ck_assert_int_eq(mn_params_load(P, path("short.safetensors")), MN_ERR_FORMAT);
    ck_assert_int_eq(mn_params_load(P, path("missing.safetensors")), MN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "missing.safetensors"));
    ck_assert_int_eq(mn_params_load(NULL, "x"), MN_ERR_MISUSE);
    ck_assert_int_eq(mn_params_count(P), 0);
    mn_params_free(P);
}
END_TEST

START_TEST(shape_conflict_leaves_store_unchanged)
{
    mn_params *P = sample_store(), *Q = mn_params_new();
    ck_assert_ok(mn_params_save(P, path("c.safetensors")));
    mn_params_create(Q, "enc.bias", MN_SHAPE(5), (mn_init){ .kind = MN_INIT_ONES });
    ck_assert_int_eq(mn_params_load(Q, path("c.safetensors")), MN_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "enc.bias"));
    ck_assert_int_eq(mn_params_count(Q), 1);
    ck_assert(mn_f32(mn_params_get(Q, "enc.bias"))[0] == 1.0f);
    mn_params_free(P); mn_params_free(Q);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, strict_load_names_missing_tensors);
    tcase_add_test(tc, known_header_layout);
    tcase_add_test(tc, resave_is_byte_identical);
    tcase_add_test(tc, save_leaves_no_temporary_and_replaces_atomically);
    tcase_add_test(tc, save_never_replaces_a_non_regular_file);
    tcase_add_test(tc, save_never_writes_through_a_planted_temporary);
    tcase_add_loop_test(tc, malformed_files_rejected, 0, (int)(sizeof bad / sizeof *bad));
    tcase_add_test(tc, short_and_missing_files);
    tcase_add_test(tc, metadata_alone_reads_no_tensor);
    tcase_add_test(tc, shape_conflict_leaves_store_unchanged);
    suite_add_tcase(s, tc);
    return mn_test_run_in_tmpdir(s, dir, sizeof dir, "mnemo-st");
}
