package relay

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// InThread runs f on an OS thread of its own, which f may move into
// another network namespace (by setns, or by creating one); the thread
// then returns to the namespace it started in, or, if it cannot, dies with
// its locked goroutine rather than run others there. Sockets f opens stay
// in the namespace they were opened in.
func InThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer own.Close()
		err = f()
		if serr := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); serr != nil {
			// The thread stays locked, so it ends with this goroutine.
			errc <- fmt.Errorf("return to the host network namespace: %w (after %v)", serr, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// DialIn connects to the TCP address addr inside the network namespace of
// process pid.
func DialIn(ctx context.Context, pid int, addr string) (net.Conn, error) {
	target, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		return nil, fmt.Errorf("open network namespace of %d: %w", pid, err)
	}
	defer target.Close()
	var c net.Conn
	err = InThread(func() error {
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter network namespace of %d: %w", pid, err)
		}
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	if err != nil && c != nil {
		c.Close()
		c = nil
	}
	return c, err
}
