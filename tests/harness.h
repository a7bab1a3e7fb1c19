/* tests/harness.h: shared by every Check suite. Runs without fork (gcc's
 * OpenMP hangs in a forked child once the parent used it), prints Check's
 * summary line and turns failures into the exit status. */
#ifndef MN_TESTS_HARNESS_H
#define MN_TESTS_HARNESS_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "mnemo.h"

/* Every executable a suite compiles has its memory plan verified (the
 * library reads no environment, so MNEMO_VERIFY_PLAN reaches only the
 * command): a plan that lets two live values share bytes fails the test
 * that compiled it. (mn_compile) in parentheses is the library's own. */
static inline mn_exec *mn_test_compile(mn_graph *g, mn_node *loss, const mn_compile_opts *opts)
{
    mn_compile_opts o = opts ? *opts : (mn_compile_opts){ 0 };
    o.verify = true;
    return (mn_compile)(g, loss, &o);
}
#define mn_compile(...) mn_test_compile(__VA_ARGS__)

#define ck_assert_ok(expr) do { mn_status s_ = (expr); ck_assert_msg(s_ == MN_OK, "%s -> %s: %s", #expr, mn_status_name(s_), mn_errmsg()); } while (0)
#define ck_assert_close(a, b, tol) do { double a_ = (a), b_ = (b); ck_assert_msg(fabs(a_ - b_) <= (tol), "%s = %.9g, expected %.9g (tol %g)", #a, a_, b_, (double)(tol)); } while (0)

static inline int mn_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Runs the suite inside a fresh temporary folder (its path in dir), then
 * removes the folder; for suites that write files. */
static inline int mn_test_run_in_tmpdir(Suite *s, char *dir, size_t n, const char *prefix)
{
    snprintf(dir, n, "/tmp/%s-XXXXXX", prefix);
    if (!mkdtemp(dir)) { fprintf(stderr, "cannot create %s\n", dir); return EXIT_FAILURE; }
    int rc = mn_test_run(s);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    return rc;
}

#endif
