// Command probe spins for half a second in a goroutine locked to its
// thread, with a second P idle, and writes a runtime trace of it to the
// file named by its argument. Under the stock scheduler sysmon preempts the
// goroutine about every 20 ms (each time handing its thread off and back);
// under Hangar's overlay, never.
package main

import (
	"os"
	"runtime"
	"runtime/trace"
	"time"
)

func main() {
	runtime.GOMAXPROCS(2)
	f, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	if err := trace.Start(f); err != nil {
		panic(err)
	}
	done := make(chan bool)
	go func() {
		runtime.LockOSThread()
		for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); {
		}
		done <- true
	}()
	<-done
	trace.Stop()
	if err := f.Close(); err != nil {
		panic(err)
	}
}
