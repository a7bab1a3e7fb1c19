#!/usr/bin/env bash
# Installs the built tree into a temporary DESTDIR and compiles a tiny
# program outside the tree against it through mnemo.pc, then runs it.
set -euo pipefail
build=$1
dest=$(mktemp -d /tmp/mnemo-install-XXXXXX)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --quiet >/dev/null
pc=$(dirname "$(find "$dest" -name mnemo.pc | head -n1)")
prefix=$(sed -n 's/^prefix=//p' "$pc/mnemo.pc")
export PKG_CONFIG_PATH="$pc:${PKG_CONFIG_PATH:-}"
cflags=$(pkg-config --define-variable=prefix="$dest$prefix" --cflags mnemo)
libs=$(pkg-config --define-variable=prefix="$dest$prefix" --libs mnemo)
cat > "$dest/tiny.c" <<'C'
#include <mnemo.h>
#include <stdio.h>
int main(void)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *w = mn_param(g, "w", MN_SHAPE(3), (mn_init){ .kind = MN_INIT_CONSTANT, .a = 2 });
    mn_exec *ex = mn_compile(g, mn_sum_all(g, mn_square(g, w)), NULL);
    if (!ex || mn_exec_run(ex)) { fprintf(stderr, "%s\n", mn_graph_errmsg(g)); return 1; }
    float loss = mn_exec_loss(ex), grad = mn_f32(mn_params_get_grad(P, "w"))[0];
    printf("mnemo %s: loss %g grad %g\n", mn_version(), loss, grad);
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
    return !(loss == 12.0f && grad == 4.0f);
}
C
cc -std=c11 -Wall -Wextra -Werror $cflags "$dest/tiny.c" -o "$dest/tiny" $libs
libdir=$(pkg-config --define-variable=prefix="$dest$prefix" --variable=libdir mnemo)
LD_LIBRARY_PATH="$libdir" "$dest/tiny"
test -x "$dest$prefix/bin/mnemo"
# a plugin built outside the tree against the installed headers, loaded by the installed command
src=$(cd "$(dirname "$0")/.." && pwd)
cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -fopenmp $cflags "$src/plugins/swish.c" -o "$dest/myswish.so" -lm
LD_LIBRARY_PATH="$libdir" "$dest$prefix/bin/mnemo" --plugin "$dest/myswish.so" ops | grep -q "^swish.swish "
echo "install test: ok (library, header, pkg-config, a program and a plugin built outside the tree)"
