# gpuimg stand-in package: NVIDIA's makeself layout, header and options
# around a generated test driver. It contains no NVIDIA software.

unset CDPATH
case "$0" in
/*) self=$0 ;;
*) self=$(pwd)/$0 ;;
esac

stub_error() {
    echo "ERROR: $*" >&2
    exit 1
}

usage() {
    cat <<EOF
$label

Usage: sh $0 [options]

  --info                  print the package's header information
  --list                  list the files in the package
  --check                 verify the package's integrity (CRC and MD5) and exit
  -x, --extract-only      extract to ./$targetdir (or to --target DIR) without installing
  --target DIR            extract into DIR (with -x)
  --keep                  extract to ./$targetdir and keep it after installing
  --tmpdir DIR            extract under DIR instead of \$TMPDIR or /tmp (must allow exec)
  --label, --version-string, --pkg-version, --target-os, --target-arch
                          print that header field
  -A, --advanced-options  list every nvidia-installer option this package supports
  -h, --help              print this text

Any other option is passed to nvidia-installer.
EOF
}

# verify checks CRCsum (POSIX cksum) and MD5 of everything after line 3.
verify() {
    sum=$(tail -n +4 "$self" | cksum | { read -r c rest; echo "$c"; })
    if [ "$sum" != "$CRCsum" ]; then
        echo "Error in check sums $sum $CRCsum" >&2
        exit 2
    fi
    if command -v md5sum >/dev/null 2>&1; then
        md5=$(tail -n +4 "$self" | md5sum | { read -r m rest; echo "$m"; })
        if [ "$md5" != "$MD5" ]; then
            echo "Error in MD5 checksums: $md5 is different from $MD5" >&2
            exit 2
        fi
    fi
}

# check_exec refuses a temporary directory where files cannot be executed
# (noexec mounts): the installer and the decompressor run from there.
check_exec() {
    [ -d "$1" ] || stub_error "Temporary directory $1 does not exist - use the --tmpdir option to specify a different one."
    probe=$(mktemp "$1/.makeself-exec.XXXXXXXX" 2>/dev/null) ||
        stub_error "Unable to write to temporary directory $1 - use the --tmpdir option to specify a different one."
    printf '#!/bin/sh\nexit 0\n' >"$probe"
    chmod 700 "$probe"
    if ! "$probe" 2>/dev/null; then
        rm -f "$probe"
        echo "Temporary directory $1 is not executable - use the --tmpdir option to specify a different one." >&2
        exit 1
    fi
    rm -f "$probe"
}

workdir=
cleanup() {
    [ -z "$workdir" ] || rm -rf "$workdir"
}

# prepare makes the temporary work directory and picks the decompressor:
# the embedded one when the package has it, else the system's gzip.
prepare() {
    check_exec "$TMPROOT"
    workdir=$(mktemp -d "$TMPROOT/makeself.XXXXXXXX") ||
        stub_error "Unable to create a temporary directory in $TMPROOT - use the --tmpdir option to specify a different one."
    trap cleanup EXIT
    trap 'exit 1' HUP INT TERM
    if [ "$skip_decompress" -gt 0 ]; then
        tail -n +"$skip_decompress" "$self" | head -n "$size_decompress" >"$workdir/nvunpack"
        chmod 755 "$workdir/nvunpack"
        uncompress=$workdir/nvunpack
    else
        command -v gzip >/dev/null 2>&1 || stub_error "gzip is needed to extract this package; install it or use a package with an embedded decompressor."
        uncompress="gzip -cd"
    fi
}

payload() {
    tail -n +"$skip" "$self" | $uncompress
}

# extract_into unpacks the tree so that DIR becomes the package root.
extract_into() {
    mkdir -p "$1" || stub_error "Unable to create directory $1."
    echo "Uncompressing $label"
    payload | tar xf - -C "$1" --strip-components=1 || stub_error "Extraction failed."
}

check_arch() {
    machine=$(uname -m)
    if [ "$machine" != "$TARGET_ARCH" ]; then
        stub_error "This .run file is intended for the $TARGET_ARCH architecture, but you are running on $machine. Use the .run file for your architecture (extraction with -x works anywhere)."
    fi
}

info=n list=n check=n extract=n target=
n=$#
while [ "$n" -gt 0 ]; do
    a=$1
    shift
    n=$((n - 1))
    case "$a" in
    --info) info=y ;;
    --list) list=y ;;
    --check) check=y ;;
    -x | --extract-only) extract=y ;;
    --keep) keep=y ;;
    --target)
        [ "$n" -gt 0 ] || stub_error "--target needs a directory."
        target=$1
        shift
        n=$((n - 1))
        ;;
    --target=*) target=${a#--target=} ;;
    --tmpdir)
        [ "$n" -gt 0 ] || stub_error "--tmpdir needs a directory."
        TMPROOT=$1
        set -- "$@" --tmpdir "$1"
        shift
        n=$((n - 1))
        ;;
    --tmpdir=*)
        TMPROOT=${a#--tmpdir=}
        set -- "$@" "$a"
        ;;
    --label) echo "$label"; exit 0 ;;
    --version-string) echo "$version_string"; exit 0 ;;
    --pkg-version) echo "$pkg_version"; exit 0 ;;
    --target-os) echo "$TARGET_OS"; exit 0 ;;
    --target-arch) echo "$TARGET_ARCH"; exit 0 ;;
    -h | --help) usage; exit 0 ;;
    --add-this-kernel | --apply-patch | --apply-patch=* | --extract-decompress)
        stub_error "$a is not supported by this stand-in package."
        ;;
    *) set -- "$@" "$a" ;;
    esac
done

if [ "$info" = y ]; then
    decompressor=system
    [ "$skip_decompress" -gt 0 ] && decompressor="embedded (lines $skip_decompress-$((skip_decompress + size_decompress - 1)))"
    cat <<EOF
Identification: $label
Target directory: $targetdir
Uncompressed size: $unpacked_kb KB
Compression: $payload_compression
Decompressor: $decompressor
Payload starts at line: $skip
Installation script: $script
Target OS: $TARGET_OS
Target architecture: $TARGET_ARCH
EOF
    exit 0
fi

if [ "$check" = y ]; then
    verify
    echo "Verifying archive integrity... OK"
    exit 0
fi

if [ "${SETUP_NOCHECK:-}" != 1 ]; then
    verify
    echo "Verifying archive integrity... OK"
fi

if [ "$list" = y ]; then
    prepare
    payload | tar tvf - || stub_error "Listing the package failed."
    exit 0
fi

if [ "$extract" = y ]; then
    prepare
    if [ -n "$target" ]; then
        extract_into "$target"
    else
        [ ! -e "$targetdir" ] || stub_error "Directory $targetdir already exists; remove it or use --target DIR."
        extract_into "$targetdir"
    fi
    exit 0
fi

check_arch
prepare
if [ "$keep" = y ]; then
    rundir=$(pwd)/$targetdir
    [ ! -e "$rundir" ] || stub_error "Directory $rundir already exists; remove it or drop --keep."
else
    rundir=$workdir/$targetdir
fi
extract_into "$rundir"
cd "$rundir" || stub_error "Unable to enter $rundir."
$script "$@"
status=$?
cd / || exit 1
exit "$status"
