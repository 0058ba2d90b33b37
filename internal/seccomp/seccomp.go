// Package seccomp holds the one seccomp profile of Hangar's sandboxes:
// executors and build steps (internal/runtime/sandbox) and database
// instances (internal/pgcluster). It imports only the OCI spec types; any
// sandboxing leaf may import it.
package seccomp

import (
	goruntime "runtime"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// blockedSyscalls fail with EPERM in every sandbox. The profile allows by
// default and denies what a web app never needs and what widens the
// kernel's attack surface: keyrings, mounts, modules, BPF, perf, tracing,
// rebooting and swap, handle-based opens that sidestep the mount
// namespace, and joining other namespaces. Without capabilities most of
// these fail anyway; the filter is the second wall, in case one of them
// has a bug reachable without privileges.
var blockedSyscalls = []string{
	"acct", "add_key", "bpf", "delete_module", "finit_module", "fsconfig", "fsmount", "fsopen",
	"fspick", "init_module", "iopl", "ioperm", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
	"lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_by_handle_at",
	"open_tree", "perf_event_open", "pivot_root", "process_vm_readv", "process_vm_writev", "ptrace",
	"quotactl", "reboot", "request_key", "setns", "swapoff", "swapon", "umount", "umount2",
	"userfaultfd", "vhangup",
}

// Namespace flags of clone(2) and unshare(2). An unprivileged process may
// still create a user namespace, and with it the others: on this kind of
// host (user.max_user_namespaces > 0) that is the widest door into kernel
// code that normally needs root.
const (
	cloneNewNS     = 0x00020000
	cloneNewCgroup = 0x02000000
	cloneNewUTS    = 0x04000000
	cloneNewIPC    = 0x08000000
	cloneNewUser   = 0x10000000
	cloneNewPID    = 0x20000000
	cloneNewNet    = 0x40000000
	cloneNewTime   = 0x00000080
)

const (
	errnoEPERM  = 1
	errnoENOSYS = 38
)

// Profile returns the profile every sandbox runs under, with the syscalls
// named in alsoBlocked failing with EPERM whatever their arguments (a
// database instance blocks unshare outright, for example).
func Profile(alsoBlocked ...string) *specs.LinuxSeccomp {
	eperm, enosys := uint(errnoEPERM), uint(errnoENOSYS)
	sc := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: architectures(),
		Syscalls: []specs.LinuxSyscall{
			{Names: append(slices.Clone(blockedSyscalls), alsoBlocked...), Action: specs.ActErrno, ErrnoRet: &eperm},
			// clone3 passes its flags in memory, out of the filter's
			// reach: ENOSYS makes libc fall back to clone, whose flags
			// it can see (Docker does the same).
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys},
		},
	}
	// One rule per flag: rules are alternatives, and a masked comparison
	// can only test bits for equality.
	for _, flag := range []uint64{cloneNewNS, cloneNewCgroup, cloneNewUTS, cloneNewIPC, cloneNewUser, cloneNewPID, cloneNewNet, cloneNewTime} {
		for _, name := range []string{"clone", "unshare"} {
			if slices.Contains(alsoBlocked, name) {
				continue // blocked whatever its flags
			}
			sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{
				Names:    []string{name},
				Action:   specs.ActErrno,
				ErrnoRet: &eperm,
				Args:     []specs.LinuxSeccompArg{{Index: 0, Value: flag, ValueTwo: flag, Op: specs.OpMaskedEqual}},
			})
		}
	}
	return sc
}

// architectures lists the ABIs the filter covers; a 32-bit process would
// otherwise reach the syscalls by their 32-bit numbers.
func architectures() []specs.Arch {
	switch goruntime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	}
	return nil
}
