//go:build !linux

package archive

import "os"

// lock does nothing here: without it GC never removes an upload's
// temporary file (tryLock), so a crash's stay until removed by hand.
func lock(*os.File) error { return nil }

func tryLock(*os.File) bool { return false }
