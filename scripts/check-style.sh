#!/usr/bin/env bash
# The C style rules of the project (nginx's): at most 80 columns, spaces
# only, no trailing white space, a final newline. Run by "make test" over
# the module's and the launcher's sources.
set -euo pipefail

cd "$(dirname "$0")/.."
status=0

for f in ngx_container_module/*.[ch] launcher/*.[ch]; do
    awk -v f="$f" '
        length($0) > 80 { printf "%s:%d: over 80 columns\n", f, FNR; bad = 1 }
        /\t/            { printf "%s:%d: tab\n", f, FNR; bad = 1 }
        /[ \t]+$/       { printf "%s:%d: trailing white space\n", f, FNR; bad = 1 }
        /\/\//          { if ($0 !~ /"[^"]*\/\/[^"]*"/) {
                              printf "%s:%d: // comment\n", f, FNR; bad = 1 } }
        END             { exit bad }
    ' "$f" || status=1

    if [ -n "$(tail -c 1 "$f")" ]; then
        echo "$f: no newline at the end"
        status=1
    fi
done

exit $status
