package pgcluster

import (
	goruntime "runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// blockedSyscalls fail with EPERM in a cluster's sandbox: what PostgreSQL
// never needs and what widens the kernel's attack surface (the executors'
// list, internal/runtime/sandbox/seccomp.go). The server runs without
// capabilities, so most of these fail anyway; the filter is the second wall.
var blockedSyscalls = []string{
	"acct", "add_key", "bpf", "delete_module", "finit_module", "fsconfig", "fsmount", "fsopen",
	"fspick", "init_module", "iopl", "ioperm", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
	"lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_by_handle_at",
	"open_tree", "perf_event_open", "pivot_root", "process_vm_readv", "process_vm_writev", "ptrace",
	"quotactl", "reboot", "request_key", "setns", "swapoff", "swapon", "umount", "umount2",
	"userfaultfd", "vhangup", "unshare",
}

// seccompProfile returns the filter of a cluster's sandbox. unshare is
// blocked outright, and clone3 (whose flags a filter cannot read) made to
// fail with ENOSYS so that libc falls back to clone, whose namespace flags
// are refused: no user namespace, the widest door into kernel code that
// normally needs root.
func seccompProfile() *specs.LinuxSeccomp {
	eperm, enosys := uint(1), uint(38)
	sc := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: seccompArchitectures(),
		Syscalls: []specs.LinuxSyscall{
			{Names: blockedSyscalls, Action: specs.ActErrno, ErrnoRet: &eperm},
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys},
		},
	}
	// CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET,
	// NEWTIME: one rule each, since a masked comparison tests bits for
	// equality.
	for _, flag := range []uint64{0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080} {
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{
			Names: []string{"clone"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: flag, ValueTwo: flag, Op: specs.OpMaskedEqual}},
		})
	}
	return sc
}

// seccompArchitectures lists the ABIs the filter covers; a 32-bit process
// would otherwise reach the syscalls by their 32-bit numbers.
func seccompArchitectures() []specs.Arch {
	switch goruntime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	}
	return nil
}
