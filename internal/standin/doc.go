// Package standin generates stand-in NVIDIA driver packages: real
// makeself-format .run files (the "1.6.0-nv" stub header, CRCsum/MD5, an
// optional embedded static decompressor, and a gzip, xz-without-check or
// zstd payload) holding a tree shaped like NVIDIA-Linux-<arch>-<v>/: a
// real-format .manifest, ELF libraries with NVIDIA's names and SONAMEs,
// an nvidia-smi that links against libnvidia-ml.so.1, and an
// nvidia-installer (POSIX sh) that behaves like the real one for a
// container install. NVIDIA's servers are unreachable from the tests, the
// demo and the benchmarks, so they all use packages made here.
//
// # Component groups
//
// Every manifest entry carries a MODULE: token. The group a build selects
// by follows REFERENCE 3.3/3.4 and is decided by TYPE first, then MODULE:
//
//	TYPE KERNEL_MODULE_SRC, KERNEL_MODULE, DKMS_CONF, MODULE_SIGNING_KEY  -> kernel-only
//	TYPE FIRMWARE, SYSTEMD_UNIT[_SYMLINK], SYSTEMD_SLEEP_SCRIPT,
//	     NVIDIA_MODPROBE, NVIDIA_MODPROBE_MANPAGE                         -> host-only
//	TYPE XMODULE_SHARED_LIB, GLX_MODULE_SHARED_LIB, GLX_MODULE_SYMLINK,
//	     XORG_OUTPUTCLASS_CONFIG                                          -> display
//	TYPE CUDA_ICD, VULKAN_ICD_JSON, GLVND_EGL_ICD_JSON,
//	     EGL_EXTERNAL_PLATFORM_JSON                                       -> graphics
//	TYPE DOCUMENTATION, MANPAGE, INSTALLER_BINARY                         -> other
//	otherwise by MODULE:
//	  nvml, nvcfg, nvpd                                 -> utility
//	  gpgpu, opencl                                     -> compute
//	  vdpau, nvcuvid, encodeapi, opticalflow            -> video
//	  opengl, egl, glvnd, vulkan, optix, nvfbc, ngx     -> graphics
//	  xdriver                                           -> display
//	  anything else                                     -> other
//
// COMPAT32 entries (files under 32/) take the group of their native twin;
// the arch token says they are 32-bit. Where the userspace TSV disagrees
// with REFERENCE 3.4 (lnc), the REFERENCE wins: libnvidia-fbc is graphics
// (the TSV says video) and nvidia-cuda-mps-control/-server are compute (the
// TSV says utility).
//
// # Stub and installer
//
// The stub (stub.sh) supports the real options: --info, --list, --check
// (exit 2 on a CRC/MD5 mismatch), -x/--extract-only, --target, --keep,
// --tmpdir (a noexec directory is refused with the real message), the header
// printers, and -A (the installer's option list: the flag probe); it checks
// CRCsum/MD5 unless SETUP_NOCHECK=1 and refuses to install on another
// `uname -m`. The installer (installer.sh) accepts exactly the options of its
// version (REFERENCE 4.3), needs root and ldconfig/grep/dmesg/tail plus
// modprobe/rmmod/lsmod/depmod on PATH, aborts on a live X lock, a loaded
// nouveau, an alternate install or a missing --no-kernel-module, installs by
// the manifest to the real destinations, writes /var/lib/nvidia/log and the
// log (--log-file-name), and runs ldconfig. Deviations, for tests: the log's
// creation time honours SOURCE_DATE_EPOCH, and GPUIMG_STANDIN_FAIL=1 makes
// it fail after installing, with the real "Please see the file ..." message.
//
// # Scale
//
// "tiny" packages hold files of a few KiB (the whole .run is about 100 KB
// with gzip). "realistic" pads every library and program of
// ../shared/data/nvidia-580.159.04-userspace.tsv to its real size with a
// non-loaded ELF section of seeded data that gzip compresses about 2.5:1;
// files the TSV does not list (32-bit copies, firmware, kernel sources,
// docs) keep their tiny sizes, so the tree is about 676 MiB unpacked.
package standin
