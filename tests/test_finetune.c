/* tests/test_finetune.c: fine-tuning in the library. Frozen parameters get
 * no gradient and keep their bytes; the others' gradients equal those of a
 * graph where the frozen ones are constants; freezing removes backward
 * work (FLOPs, arena); unfreezing and compiling again trains them;
 * optimizers follow a freeze made after their first step; per-group
 * learning rates; partial loads report loaded / missing / unexpected /
 * mismatched names, rename through rules and refuse shape mismatches. */
#include "harness.h"
#include "conll.h"
#include "ner_train.h"
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
enum { B = 8, IN = 12, H = 16, OUT = 5 };

static float xs[B * IN], ys[B * OUT];

static void fill_data(void)
{
    mn_rng_fill_normal(xs, B * IN, 7, 1, 0, 1);
    mn_rng_fill_normal(ys, B * OUT, 7, 2, 0, 1);
}

/* x -> a (linear) -> tanh -> b (linear) -> tanh -> c (linear) -> mse */
static mn_node *mlp3(mn_graph *g)
{
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(B, IN)), *y = mn_input(g, "y", MN_F32, MN_SHAPE(B, OUT));
    mn_node *h = mn_tanh(g, mn_linear(g, "a", x, H, true));
    h = mn_tanh(g, mn_linear(g, "b", h, H, true));
    return mn_mse_loss(g, mn_linear(g, "c", h, OUT, true), y, MN_REDUCE_MEAN);
}

static mn_exec *compiled(mn_graph *g, mn_node *loss)
{
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = 1 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    return ex;
}

static void run(mn_exec *ex)
{
    ck_assert_ok(mn_exec_feed_data(ex, "x", xs, sizeof xs));
    ck_assert_ok(mn_exec_feed_data(ex, "y", ys, sizeof ys));
    ck_assert_ok(mn_exec_run(ex));
}

static bool all_zero(const mn_tensor *t)
{
    for (int64_t i = 0; i < mn_tensor_numel(t); i++)
        if (mn_f32(t)[i] != 0.0f) return false;
    return true;
}

static float *copy_of(mn_params *P, const char *name)
{
    mn_tensor *t = mn_params_get(P, name);
    ck_assert_ptr_nonnull(t);
    float *c = malloc(mn_tensor_bytes(t));
    memcpy(c, t->data, mn_tensor_bytes(t));
    return c;
}

static bool same_bytes(mn_params *P, const char *name, const float *c)
{
    mn_tensor *t = mn_params_get(P, name);
    return memcmp(t->data, c, mn_tensor_bytes(t)) == 0;
}

START_TEST(freeze_matches_patterns_and_refuses_unknown_ones)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mlp3(g);
    ck_assert_ok(mn_params_create_state(P, "optim.a.weight.step", MN_SCALAR));
    int n = -1;
    ck_assert_ok(mn_params_freeze(P, "a.*,b.weight", true, &n));
    ck_assert_int_eq(n, 3);
    ck_assert(mn_params_is_frozen(P, mn_params_find(P, "a.weight")));
    ck_assert(mn_params_is_frozen(P, mn_params_find(P, "b.weight")));
    ck_assert(!mn_params_is_frozen(P, mn_params_find(P, "b.bias")));
    ck_assert_int_eq(mn_params_frozen_numel(P), H * IN + H + H * H);
    /* a pattern that matches nothing (state tensors do not count) changes nothing */
    ck_assert_int_eq(mn_params_freeze(P, "c.*,optim.*", true, &n), MN_ERR_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "\"optim.*\""));
    ck_assert(!mn_params_is_frozen(P, mn_params_find(P, "c.weight")));
    ck_assert_int_eq(mn_params_freeze(P, "", true, NULL), MN_ERR_INVALID);
    ck_assert_int_eq(mn_params_freeze(P, "a.*,,b.*", true, NULL), MN_ERR_INVALID);
    ck_assert_ok(mn_params_freeze(P, "a.*", false, &n));
    ck_assert_int_eq(n, 2);
    ck_assert(!mn_params_is_frozen(P, mn_params_find(P, "a.weight")));
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

/* Frozen tensors bit-identical after training; no gradient written to them. */
START_TEST(frozen_parameters_get_no_gradient_and_keep_their_bytes)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *loss = mlp3(g);
    ck_assert_ok(mn_params_freeze(P, "a.*", true, NULL));
    mn_exec *ex = compiled(g, loss);
    mn_optim *o = mn_adam(P, (mn_adam_opts){ .lr = 0.05f, .weight_decay = 0.1f });
    float *aw = copy_of(P, "a.weight"), *ab = copy_of(P, "a.bias"), *cw = copy_of(P, "c.weight");
    for (int step = 0; step < 3; step++) {
        run(ex);
        ck_assert(all_zero(mn_params_get_grad(P, "a.weight")));
        ck_assert(all_zero(mn_params_get_grad(P, "a.bias")));
        ck_assert(!all_zero(mn_params_get_grad(P, "b.weight")));
        ck_assert_ok(mn_optim_step(o));
        mn_optim_zero_grad(o);
    }
    ck_assert(same_bytes(P, "a.weight", aw));
    ck_assert(same_bytes(P, "a.bias", ab));
    ck_assert(!same_bytes(P, "c.weight", cw));
    ck_assert_ptr_null(mn_params_get(P, "optim.a.weight.exp_avg"));      /* no state for a frozen one */
    free(aw); free(ab); free(cw);
    mn_optim_free(o);
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

/* The same network with layer a given as constants (inputs fed with a's values). */
static mn_node *mlp3_const_a(mn_graph *g, mn_node **aw, mn_node **ab)
{
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(B, IN)), *y = mn_input(g, "y", MN_F32, MN_SHAPE(B, OUT));
    *aw = mn_input(g, "aw", MN_F32, MN_SHAPE(H, IN));
    *ab = mn_input(g, "ab", MN_F32, MN_SHAPE(H));
    mn_node *h = mn_tanh(g, mn_linear_op(g, x, *aw, *ab));
    h = mn_tanh(g, mn_linear(g, "b", h, H, true));
    return mn_mse_loss(g, mn_linear(g, "c", h, OUT, true), y, MN_REDUCE_MEAN);
}

START_TEST(gradients_of_the_rest_equal_those_with_the_frozen_ones_as_constants)
{
    mn_params *P = mn_params_new(), *Q = mn_params_new();
    mn_graph *g = mn_graph_new(P), *h = mn_graph_new(Q);
    mn_node *loss = mlp3(g), *aw, *ab;
    mn_node *lq = mlp3_const_a(h, &aw, &ab);
    ck_assert_ok(mn_params_freeze(P, "a.*", true, NULL));
    mn_exec *ex = compiled(g, loss), *eq = compiled(h, lq);
    run(ex);
    ck_assert_ok(mn_exec_feed(eq, "aw", mn_params_get(P, "a.weight")));
    ck_assert_ok(mn_exec_feed(eq, "ab", mn_params_get(P, "a.bias")));
    run(eq);
    ck_assert(mn_exec_loss(ex) == mn_exec_loss(eq));
    const char *names[] = { "b.weight", "b.bias", "c.weight", "c.bias" };
    for (int i = 0; i < 4; i++) {
        mn_tensor *gp = mn_params_get_grad(P, names[i]), *gq = mn_params_get_grad(Q, names[i]);
        ck_assert_msg(!all_zero(gp), "%s: no gradient", names[i]);
        ck_assert_msg(memcmp(gp->data, gq->data, mn_tensor_bytes(gp)) == 0, "%s: gradients differ", names[i]);
    }
    mn_exec_free(ex); mn_exec_free(eq);
    mn_graph_free(g); mn_graph_free(h);
    mn_params_free(P); mn_params_free(Q);
}
END_TEST

START_TEST(freezing_removes_backward_work)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *loss = mlp3(g);
    mn_exec *full = compiled(g, loss);
    run(full);                                          /* before the freeze makes it stale */
    double lf = mn_exec_loss(full);
    ck_assert_ok(mn_params_freeze(P, "a.*,b.*", true, NULL));
    mn_exec *part = compiled(g, loss);
    mn_exec_stats f = mn_exec_get_stats(full), p = mn_exec_get_stats(part);
    ck_assert_msg(p.flops < f.flops, "flops %g frozen, %g not", p.flops, f.flops);
    ck_assert_msg(p.backward_steps < f.backward_steps, "backward steps %d frozen, %d not", p.backward_steps, f.backward_steps);
    ck_assert_msg(p.arena_bytes < f.arena_bytes, "arena %lld frozen, %lld not", (long long)p.arena_bytes, (long long)f.arena_bytes);
    /* the forward (the loss) is unchanged */
    run(part);
    ck_assert(mn_exec_loss(part) == lf);
    mn_exec_free(full); mn_exec_free(part);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

START_TEST(unfreezing_and_compiling_again_trains_the_parameter)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *loss = mlp3(g);
    ck_assert_ok(mn_params_freeze(P, "a.*", true, NULL));
    mn_exec *ex = compiled(g, loss);
    mn_optim *o = mn_sgd(P, (mn_sgd_opts){ .lr = 0.1f });
    float *aw = copy_of(P, "a.weight");
    run(ex);
    ck_assert_ok(mn_optim_step(o));
    mn_optim_zero_grad(o);
    ck_assert(same_bytes(P, "a.weight", aw));
    ck_assert_ok(mn_params_freeze(P, "a.*", false, NULL));
    mn_exec_free(ex);
    ex = compiled(g, loss);
    run(ex);
    ck_assert(!all_zero(mn_params_get_grad(P, "a.weight")));
    ck_assert_ok(mn_optim_step(o));
    ck_assert(!same_bytes(P, "a.weight", aw));
    free(aw);
    mn_optim_free(o);
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

/* An executable compiled before its frozen set changed is stale: running
 * it is an error naming the parameter, until compiled again; a change
 * undone, or one to a parameter it does not use, is not. */
START_TEST(a_stale_executable_after_a_freeze_change_is_an_error)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *loss = mlp3(g);
    ck_assert_ok(mn_params_create(P, "unused", MN_SHAPE(3), (mn_init){ .kind = MN_INIT_ONES }));
    ck_assert_ok(mn_params_freeze(P, "a.*", true, NULL));
    mn_exec *ex = compiled(g, loss);
    run(ex);
    ck_assert_ok(mn_params_freeze(P, "a.bias", false, NULL));          /* unfrozen: ex computes no gradient for it */
    ck_assert_ok(mn_exec_feed_data(ex, "x", xs, sizeof xs));
    ck_assert_int_eq(mn_exec_run(ex), MN_ERR_MISUSE);
    ck_assert_str_eq(mn_errmsg(), "run: parameter \"a.bias\" was unfrozen after this executable was compiled, which computes no "
                                  "gradient for it (it would not train): compile again after mn_params_freeze");
    ck_assert_ok(mn_params_freeze(P, "a.bias", true, NULL));           /* undone: fine again */
    run(ex);
    ck_assert_ok(mn_params_freeze(P, "unused", true, NULL));           /* not in this graph: fine */
    run(ex);
    ck_assert_ok(mn_params_freeze(P, "c.weight", true, NULL));         /* frozen: ex still adds to its gradient */
    ck_assert_int_eq(mn_exec_run(ex), MN_ERR_MISUSE);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "\"c.weight\" was frozen after this executable was compiled"));
    mn_exec_free(ex);
    ex = compiled(g, loss);                                             /* compiled again: runs */
    mn_params_zero_grad(P);
    run(ex);
    ck_assert(all_zero(mn_params_get_grad(P, "c.weight")));
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

/* An optimizer bound before a freeze skips the parameter from then on. */
START_TEST(optimizer_follows_a_freeze_after_its_first_step)
{
    mn_params *P = mn_params_new();
    ck_assert_ok(mn_params_create(P, "w", MN_SHAPE(4), (mn_init){ .kind = MN_INIT_ONES }));
    ck_assert_ok(mn_params_create(P, "v", MN_SHAPE(4), (mn_init){ .kind = MN_INIT_ONES }));
    mn_optim *o = mn_sgd(P, (mn_sgd_opts){ .lr = 0.5f });
    for (int i = 0; i < 4; i++) { mn_f32(mn_params_get_grad(P, "w"))[i] = 1; mn_f32(mn_params_get_grad(P, "v"))[i] = 1; }
    ck_assert_ok(mn_optim_step(o));
    ck_assert_float_eq(mn_f32(mn_params_get(P, "w"))[0], 0.5f);
    ck_assert_ok(mn_params_freeze(P, "w", true, NULL));
    ck_assert_ok(mn_optim_step(o));                     /* the gradients are still 1 */
    ck_assert_float_eq(mn_f32(mn_params_get(P, "w"))[0], 0.5f);
    ck_assert_float_eq(mn_f32(mn_params_get(P, "v"))[0], 0.0f);
    mn_optim_free(o);
    mn_params_free(P);
}
END_TEST

START_TEST(learning_rate_groups_by_pattern)
{
    mn_params *P = mn_params_new();
    ck_assert_ok(mn_params_create(P, "emb.weight", MN_SHAPE(2), (mn_init){ .kind = MN_INIT_ONES }));
    ck_assert_ok(mn_params_create(P, "head.weight", MN_SHAPE(2), (mn_init){ .kind = MN_INIT_ONES }));
    mn_optim *o = mn_sgd(P, (mn_sgd_opts){ .lr = 0.5f, .momentum = 0.9f });
    ck_assert_int_eq(mn_optim_add_group_lr(o, "emb.*", 0.25f), 1);
    ck_assert_float_eq(mn_optim_get_lr(o, 1), 0.25f);
    ck_assert_int_eq(mn_optim_group_of(o, "emb.weight"), 1);
    for (int i = 0; i < 2; i++) { mn_f32(mn_params_get_grad(P, "emb.weight"))[i] = 1; mn_f32(mn_params_get_grad(P, "head.weight"))[i] = 1; }
    ck_assert_ok(mn_optim_step(o));
    ck_assert_float_eq(mn_f32(mn_params_get(P, "emb.weight"))[0], 0.75f);
    ck_assert_float_eq(mn_f32(mn_params_get(P, "head.weight"))[0], 0.5f);
    ck_assert_int_eq(mn_optim_add_group_lr(o, "x", -1.0f), -1);          /* checked like any lr */
    mn_optim_free(o);
    mn_params_free(P);
}
END_TEST

/* ---- partial loads ---- */

static void create(mn_params *P, const char *name, mn_shape s, float v)
{
    ck_assert_ok(mn_params_create(P, name, s, (mn_init){ .kind = MN_INIT_CONSTANT, .a = v }));
}

/* A pre-trained "language model" file: emb, rnn, head and optimizer state. */
static void save_source(const char *path)
{
    mn_params *S = mn_params_new();
    create(S, "emb.weight", MN_SHAPE(10, 4), 1);
    create(S, "rnn.weight_ih_l0", MN_SHAPE(12, 4), 2);
    create(S, "rnn.bias_ih_l0", MN_SHAPE(12), 3);
    create(S, "head.weight", MN_SHAPE(10, 3), 4);
    ck_assert_ok(mn_params_create_state(S, "optim.emb.weight.exp_avg", MN_SHAPE(10, 4)));
    ck_assert_ok(mn_params_save(S, path));
    mn_params_free(S);
}

/* The fine-tuned model: an encoder with the rnn, a new head of another width. */
static mn_params *target(void)
{
    mn_params *P = mn_params_new();
    create(P, "emb.weight", MN_SHAPE(10, 4), -1);
    create(P, "encoder.rnn.weight_ih_l0", MN_SHAPE(12, 4), -1);
    create(P, "encoder.rnn.bias_ih_l0", MN_SHAPE(12), -1);
    create(P, "head.weight", MN_SHAPE(7, 3), -1);
    create(P, "tag.bias", MN_SHAPE(7), -1);
    return P;
}

static bool holds(const mn_load_report *r, mn_load_kind k, const char *name)
{
    for (int i = 0; i < r->count[k]; i++)
        if (!strcmp(r->names[k][i], name)) return true;
    return false;
}

static float first(mn_params *P, const char *name) { return mn_f32(mn_params_get(P, name))[0]; }

START_TEST(partial_load_by_name_reports_every_category)
{
    char path[128];
    snprintf(path, sizeof path, "%s/src.safetensors", dir);
    save_source(path);
    mn_params *P = target();
    mn_load_report r;
    ck_assert_ok(mn_params_load_partial(P, path, &(mn_load_opts){ .skip_mismatched = true }, &r));
    ck_assert_int_eq(r.count[MN_LOAD_LOADED], 1);
    ck_assert(holds(&r, MN_LOAD_LOADED, "emb.weight"));
    ck_assert_int_eq(r.count[MN_LOAD_MISSING], 3);
    ck_assert(holds(&r, MN_LOAD_MISSING, "encoder.rnn.weight_ih_l0") && holds(&r, MN_LOAD_MISSING, "tag.bias"));
    ck_assert_int_eq(r.count[MN_LOAD_UNEXPECTED], 2);                    /* optimizer state is not counted */
    ck_assert(holds(&r, MN_LOAD_UNEXPECTED, "rnn.weight_ih_l0") && holds(&r, MN_LOAD_UNEXPECTED, "rnn.bias_ih_l0"));
    ck_assert_int_eq(r.count[MN_LOAD_MISMATCHED], 1);
    ck_assert(holds(&r, MN_LOAD_MISMATCHED, "head.weight"));
    ck_assert_float_eq(first(P, "emb.weight"), 1);
    ck_assert_float_eq(first(P, "head.weight"), -1);
    ck_assert_ptr_null(mn_params_get(P, "optim.emb.weight.exp_avg"));
    mn_load_report_free(&r);
    mn_params_free(P);
}
END_TEST

START_TEST(partial_load_refuses_a_shape_mismatch_and_copies_nothing)
{
    char path[128];
    snprintf(path, sizeof path, "%s/src2.safetensors", dir);
    save_source(path);
    mn_params *P = target();
    mn_load_report r;
    ck_assert_int_eq(mn_params_load_partial(P, path, NULL, &r), MN_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "\"head.weight\" [7,3] in the store"));
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "[10,3] in the source"));
    ck_assert_int_eq(r.count[MN_LOAD_MISMATCHED], 1);
    ck_assert_float_eq(first(P, "emb.weight"), -1);                      /* all or nothing */
    mn_load_report_free(&r);
    mn_params_free(P);
}
END_TEST

START_TEST(partial_load_renames_through_rules)
{
    char path[128];
    snprintf(path, sizeof path, "%s/src3.safetensors", dir);
    save_source(path);
    mn_params *P = target();
    mn_load_report r;
    const char *map = "# the LM's rnn is the encoder's\n  rnn.* -> encoder.rnn.*  \n\nhead.* -> -\n";
    ck_assert_ok(mn_params_load_partial(P, path, &(mn_load_opts){ .rename = map }, &r));
    ck_assert_int_eq(r.count[MN_LOAD_LOADED], 3);
    ck_assert(holds(&r, MN_LOAD_LOADED, "encoder.rnn.weight_ih_l0") && holds(&r, MN_LOAD_LOADED, "encoder.rnn.bias_ih_l0"));
    ck_assert_int_eq(r.count[MN_LOAD_UNEXPECTED], 1);
    ck_assert(holds(&r, MN_LOAD_UNEXPECTED, "head.weight"));            /* dropped by its rule */
    ck_assert_int_eq(r.count[MN_LOAD_MISSING], 2);
    ck_assert_int_eq(r.count[MN_LOAD_MISMATCHED], 0);
    ck_assert_float_eq(first(P, "encoder.rnn.weight_ih_l0"), 2);
    ck_assert_float_eq(first(P, "encoder.rnn.bias_ih_l0"), 3);
    mn_load_report_free(&r);
    /* two stars in order, ';' separated rules */
    mn_params *Q = mn_params_new();
    create(Q, "rnn.l0.weight", MN_SHAPE(12, 4), 0);
    ck_assert_ok(mn_params_load_partial(Q, path, &(mn_load_opts){ .rename = "emb.* -> -; *.*_ih_l0 -> *.l0.*", .skip_mismatched = true }, &r));
    ck_assert_int_eq(r.count[MN_LOAD_LOADED], 1);
    ck_assert_float_eq(first(Q, "rnn.l0.weight"), 2);
    mn_load_report_free(&r);
    mn_params_free(Q);
    mn_params_free(P);
}
END_TEST

START_TEST(a_name_is_renamed_as_a_partial_load_would)
{
    char out[64];
    const char *rules = "# comment\nrnn.* -> encoder.rnn.*\nhead.* -> -";
    ck_assert_int_eq(mn_params_rename(rules, "rnn.weight_ih_l0", out, sizeof out), MN_OK);
    ck_assert_str_eq(out, "encoder.rnn.weight_ih_l0");
    ck_assert_int_eq(mn_params_rename(rules, "head.bias", out, sizeof out), MN_OK);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(mn_params_rename(rules, "emb.weight", out, sizeof out), MN_OK);
    ck_assert_str_eq(out, "emb.weight");
    ck_assert_int_eq(mn_params_rename(NULL, "emb.weight", out, sizeof out), MN_OK);
    ck_assert_str_eq(out, "emb.weight");
    ck_assert_int_eq(mn_params_rename("rnn.* -> encoder.rnn.*", "rnn.x", out, 8), MN_ERR_INVALID);
    ck_assert_int_eq(mn_params_rename("emb.weight ner.chars.weight", "emb.weight", out, sizeof out), MN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "rename rule 1"));
}
END_TEST

START_TEST(bad_rename_rules_are_refused_with_their_line)
{
    char path[128];
    snprintf(path, sizeof path, "%s/src4.safetensors", dir);
    save_source(path);
    mn_params *P = target();
    static const struct { const char *map, *says; } bad[] = {
        { "rnn.* encoder.rnn.*", "rule 1: no \"->\"" },
        { "# ok\nrnn.* -> encoder.rnn", "rule 2: FROM and TO hold different numbers of '*'" },
        { " -> x", "rule 1: FROM is empty" },
        { "rnn.? -> x.?", "rule 1: a name holds" },
        { "rnn.weight_ih_l0 -> emb.weight", "both become \"emb.weight\"" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mn_load_report r;
        mn_status s = mn_params_load_partial(P, path, &(mn_load_opts){ .rename = bad[i].map, .skip_mismatched = true }, &r);
        ck_assert_msg(s == MN_ERR_INVALID, "%s: %s", bad[i].map, mn_status_name(s));
        ck_assert_msg(strstr(mn_errmsg(), bad[i].says) != NULL, "%s: \"%s\"", bad[i].map, mn_errmsg());
        ck_assert_int_eq(r.count[MN_LOAD_LOADED], 0);
        ck_assert_float_eq(first(P, "emb.weight"), -1);
    }
    mn_params_free(P);
}
END_TEST

/* A rule with many stars against a long name that almost matches: with
 * backtracking over every split this would take hours. */
START_TEST(a_hostile_rule_is_matched_in_polynomial_time)
{
    char name[241], to[241] = "x";
    memset(name, 'a', 240);
    name[240] = 0;
    memset(to + 1, 'a', 233);                                            /* the last star's span */
    to[234] = 0;
    mn_params *S = mn_params_new(), *P = mn_params_new();
    create(S, name, MN_SHAPE(2), 5);
    create(P, to, MN_SHAPE(2), 0);
    mn_load_report r;
    ck_assert_ok(mn_params_copy_partial(P, S, &(mn_load_opts){ .rename = "*a*a*a*a*a*a*a*b -> x********" }, &r));
    ck_assert_int_eq(r.count[MN_LOAD_UNEXPECTED], 1);                    /* no match: the name stays */
    mn_load_report_free(&r);
    ck_assert_ok(mn_params_copy_partial(P, S, &(mn_load_opts){ .rename = "*a*a*a*a*a*a*a* -> x********" }, &r));
    ck_assert_int_eq(r.count[MN_LOAD_LOADED], 1);
    ck_assert_float_eq(first(P, to), 5);
    mn_load_report_free(&r);
    mn_params_free(S);
    mn_params_free(P);
}
END_TEST

START_TEST(partial_load_of_a_missing_or_corrupt_file_changes_nothing)
{
    mn_params *P = target();
    mn_load_report r;
    char path[128];
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    ck_assert_int_eq(mn_params_load_partial(P, path, NULL, &r), MN_ERR_IO);
    snprintf(path, sizeof path, "%s/pipe", dir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_int_eq(mn_params_load_partial(P, path, NULL, &r), MN_ERR_IO);      /* never blocks on a pipe */
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "not a regular file"));
    snprintf(path, sizeof path, "%s/junk.safetensors", dir);
    FILE *f = fopen(path, "wb");
    fputs("\x10\0\0\0\0\0\0\0{\"a\": nonsense}", f);
    fclose(f);
    mn_status s = mn_params_load_partial(P, path, NULL, &r);
    ck_assert_msg(s != MN_OK, "a corrupt file loads");
    ck_assert_int_eq(r.count[MN_LOAD_LOADED], 0);
    ck_assert_float_eq(first(P, "emb.weight"), -1);
    mn_params_free(P);
}
END_TEST

/* The partial-load calls of mnemo 0.1, whose options had no skip list (a
 * program built then calls these symbols; the header's macros of the same
 * names now reach the sized calls). */
typedef struct { const char *rename; bool skip_mismatched; } load_opts_0_1;
mn_status (mn_params_copy_partial)(mn_params *P, const mn_params *src, const mn_load_opts *opts, mn_load_report *report);

static void set_all(mn_params *P, const char *name, float v)
{
    mn_tensor *t = mn_params_get(P, name);
    for (int64_t i = 0; i < mn_tensor_numel(t); i++) mn_f32(t)[i] = v;
}

/* A skip list holds whole names, never rules or patterns; a caller built
 * against 0.1 still loads through its smaller options; a size the library
 * does not know is refused and loads nothing. */
START_TEST(partial_load_skips_whole_names_and_checks_the_options_size)
{
    mn_params *S = mn_params_new(), *P = mn_params_new();
    create(S, "emb.weight", MN_SHAPE(2), 1);
    create(S, "head.weight", MN_SHAPE(2), 2);
    create(P, "emb.weight", MN_SHAPE(2), -1);
    create(P, "head.weight", MN_SHAPE(2), -1);
    mn_load_report r;
    const char *const not_names[] = { "emb.*", "head.weight -> -", "*", NULL };
    ck_assert_ok(mn_params_copy_partial(P, S, &(mn_load_opts){ .skip = not_names }, &r));
    ck_assert_int_eq(r.count[MN_LOAD_LOADED], 2);
    mn_load_report_free(&r);
    const char *const skip[] = { "emb.weight", NULL };
    set_all(P, "head.weight", -1);
    set_all(P, "emb.weight", -1);
    ck_assert_ok(mn_params_copy_partial(P, S, &(mn_load_opts){ .skip = skip }, &r));
    ck_assert_int_eq(r.count[MN_LOAD_LOADED], 1);
    ck_assert_int_eq(r.count[MN_LOAD_MISSING], 1);
    ck_assert_int_eq(r.count[MN_LOAD_UNEXPECTED], 0);                    /* a skipped name is not reported */
    ck_assert_float_eq(first(P, "emb.weight"), -1);
    ck_assert_float_eq(first(P, "head.weight"), 2);
    mn_load_report_free(&r);
    load_opts_0_1 old = { "head.* -> -", false };
    ck_assert_ok(mn_params_copy_partial_sized(sizeof old, P, S, (const mn_load_opts *)&old, &r));
    ck_assert_int_eq(r.count[MN_LOAD_LOADED], 1);
    ck_assert_float_eq(first(P, "emb.weight"), 1);
    mn_load_report_free(&r);
    ck_assert_ok((mn_params_copy_partial)(P, S, (const mn_load_opts *)&old, &r));
    ck_assert_int_eq(r.count[MN_LOAD_UNEXPECTED], 1);
    mn_load_report_free(&r);
    set_all(P, "emb.weight", -1);
    ck_assert_int_eq(mn_params_copy_partial_sized(sizeof(mn_load_opts) + 8, P, S, &(mn_load_opts){ 0 }, &r), MN_ERR_MISUSE);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "mn_load_opts of 32 bytes"));
    ck_assert_int_eq(r.count[MN_LOAD_LOADED], 0);
    ck_assert_float_eq(first(P, "emb.weight"), -1);
    mn_params_free(S);
    mn_params_free(P);
}
END_TEST

/* ---- ner --init-from (tools/ner_init.c) ---- */

static const char NER_TAGS[] = "[\"O\",\"B-PER\",\"I-PER\"]";

/* A tagger's store in miniature: 4 words, 8 character rows (code points 1-4
 * have rows 4-7), a layer, all -1. */
static mn_params *tagger_store(mn_strtab *words)
{
    mn_params *P = mn_params_new();
    create(P, "ner.words.weight", MN_SHAPE(4, 2), -1);
    create(P, "ner.chars.weight", MN_SHAPE(8, 2), -1);
    create(P, "ner.lstm.weight", MN_SHAPE(3), -1);
    memset(words, 0, sizeof *words);
    int32_t id;
    for (int i = 0; i < 4; i++) ck_assert_ok(mn_strtab_add(words, (const char *[]){ "<pad>", "<unk>", "the", "a" }[i], 1, &id));
    return P;
}

static bool all_equal(mn_params *P, const char *name, float v)
{
    const mn_tensor *t = mn_params_get(P, name);
    for (int64_t i = 0; i < mn_tensor_numel(t); i++)
        if (mn_f32(t)[i] != v) return false;
    return true;
}

/* A source name is matched by the map's rules, never read as a rule
 * itself (the rows ner_init.c copies its own way are skipped by name): a
 * name of 256 bytes that a rule maps to the character rows loads. The
 * origin is recorded in the one format of mnemo.init_from. */
START_TEST(ner_init_reads_source_names_only_as_names)
{
    mn_strtab words;
    mn_params *P = tagger_store(&words), *src = mn_params_new();
    char name[300], map[400];
    snprintf(name, sizeof name, "chars%0251d", 0);
    snprintf(map, sizeof map, "*%0251d -> ner.*.weight\n* -> -\n", 0);
    ck_assert_int_eq((int)strlen(name), 256);
    create(src, name, MN_SHAPE(3, 2), 5);
    create(src, "rnn.weight", MN_SHAPE(3), 6);
    ck_assert_ok(mn_params_set_meta(src, "mnemo.model", "lstm"));
    ck_assert_ok(mn_params_set_meta(src, "mnemo.vocab", "[1, 4, 200]"));       /* code points: rows 4 and 7; 200 has none */
    ck_assert_ok(mn_params_set_meta(src, "mnemo.train_state", "{\"step\": 7}"));
    mn_ner_init in = { .path = "lm.st", .map_path = "map.txt", .map = map, .words = &words, .tags_json = NER_TAGS };
    bool bad_map = true;
    mn_status s = mn_ner_init_from(P, src, &in, &bad_map);
    ck_assert_msg(s == MN_OK, "%s", mn_errmsg());
    ck_assert(!bad_map);
    const float *c = mn_f32(mn_params_get(P, "ner.chars.weight"));
    for (int r = 0; r < 8; r++) ck_assert_float_eq(c[r * 2], r == 4 || r == 7 ? 5 : -1);
    ck_assert(all_equal(P, "ner.lstm.weight", -1));
    json_t *o = json_loads(mn_params_get_meta(P, "mnemo.init_from"), 0, NULL);
    ck_assert_int_eq(json_object_size(o), 8);
    ck_assert_str_eq(json_string_value(json_object_get(o, "model")), "lstm");
    ck_assert_str_eq(json_string_value(json_object_get(o, "map")), "map.txt");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "step")), 7);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "loaded")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "missing")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "unexpected")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "mismatched")), 0);
    json_decref(o);
    mn_strtab_free(&words);
    mn_params_free(src);
    mn_params_free(P);
}
END_TEST

/* All or nothing: rows matched by word are copied only once every other
 * tensor is known to fit. A ner checkpoint of the same words whose layer
 * has another shape, or whose tags differ, changes nothing. */
START_TEST(ner_init_copies_nothing_when_a_later_tensor_fails)
{
    for (int k = 0; k < 2; k++) {
        mn_strtab words;
        mn_params *P = tagger_store(&words), *src = mn_params_new();
        create(src, "ner.words.weight", MN_SHAPE(4, 2), 1);               /* first in the store: checked first */
        if (k == 0) create(src, "ner.lstm.weight", MN_SHAPE(5), 2);
        else create(src, "ner.out.weight", MN_SHAPE(3, 4), 2);
        ck_assert_ok(mn_params_set_meta(src, "mnemo.model", "ner"));
        ck_assert_ok(mn_params_set_meta(src, "mnemo.ner.words", "[\"<pad>\",\"<unk>\",\"a\",\"the\"]"));
        ck_assert_ok(mn_params_set_meta(src, "mnemo.ner.tags", k == 0 ? NER_TAGS : "[\"O\"]"));
        if (k == 1) create(P, "ner.out.weight", MN_SHAPE(3, 4), -1);
        mn_ner_init in = { .path = "one.st", .words = &words, .tags_json = NER_TAGS };
        bool bad_map = true;
        mn_status s = mn_ner_init_from(P, src, &in, &bad_map);
        ck_assert_int_eq(s, k == 0 ? MN_ERR_SHAPE : MN_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(mn_errmsg(), k == 0 ? "\"ner.lstm.weight\" [3] in the store" : "holds rows of tags"));
        ck_assert(!bad_map);
        ck_assert(all_equal(P, "ner.words.weight", -1));
        ck_assert(all_equal(P, "ner.lstm.weight", -1));
        ck_assert_ptr_null(mn_params_get_meta(P, "mnemo.init_from"));
        mn_strtab_free(&words);
        mn_params_free(src);
        mn_params_free(P);
    }
}
END_TEST

int main(void)
{
    fill_data();
    Suite *s = suite_create("finetune");
    TCase *t = tcase_create("freeze");
    tcase_add_test(t, freeze_matches_patterns_and_refuses_unknown_ones);
    tcase_add_test(t, frozen_parameters_get_no_gradient_and_keep_their_bytes);
    tcase_add_test(t, gradients_of_the_rest_equal_those_with_the_frozen_ones_as_constants);
    tcase_add_test(t, freezing_removes_backward_work);
    tcase_add_test(t, unfreezing_and_compiling_again_trains_the_parameter);
    tcase_add_test(t, a_stale_executable_after_a_freeze_change_is_an_error);
    tcase_add_test(t, optimizer_follows_a_freeze_after_its_first_step);
    tcase_add_test(t, learning_rate_groups_by_pattern);
    suite_add_tcase(s, t);
    TCase *l = tcase_create("partial_load");
    tcase_add_test(l, partial_load_by_name_reports_every_category);
    tcase_add_test(l, partial_load_refuses_a_shape_mismatch_and_copies_nothing);
    tcase_add_test(l, partial_load_renames_through_rules);
    tcase_add_test(l, a_name_is_renamed_as_a_partial_load_would);
    tcase_add_test(l, bad_rename_rules_are_refused_with_their_line);
    tcase_add_test(l, a_hostile_rule_is_matched_in_polynomial_time);
    tcase_add_test(l, partial_load_of_a_missing_or_corrupt_file_changes_nothing);
    tcase_add_test(l, partial_load_skips_whole_names_and_checks_the_options_size);
    tcase_add_test(l, ner_init_reads_source_names_only_as_names);
    tcase_add_test(l, ner_init_copies_nothing_when_a_later_tensor_fails);
    suite_add_tcase(s, l);
    return mn_test_run_in_tmpdir(s, dir, sizeof dir, "mnemo-finetune");
}
