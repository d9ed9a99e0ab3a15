#!/bin/sh
# help_for_man.sh BIN [SUBCOMMAND] --help: a command's --help as help2man reads it, for the
# man pages (packaging/install.mk). help2man takes the SYNOPSIS from "Usage:" lines and
# their "or:" alternatives, so the usage block is rewritten into those: "usage:"
# capitalised, wrapped lines joined to the line they continue, and a second form
# ("       cartoongan export --checkpoint-dir ...") made an "or:" line. The rest is as is.
bin=$1
shift
"$bin" "$@" | awk '
    u && /^ +cartoongan / { print line; sub(/^ +/, ""); line = "  or: " $0; next }
    u && /^ +[^ ]/ { sub(/^ +/, " "); line = line $0; next }
    u { print line; u = 0 }
    NR == 1 && /^usage:/ { sub(/^usage:/, "Usage:"); line = $0; u = 1; next }
    { print }
    END { if (u) print line }'
