package image

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"syscall"
)

// unmountUnder detaches every mount at or below dir, deepest first:
// debootstrap mounts /proc and /sys in its target, and a build it left
// half done must not make a recursive removal walk them.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			return err
		}
	}
	return sc.Err()
}
