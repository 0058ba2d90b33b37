//go:build !race

package rawconn

func released(uintptr) {}
func acquired(uintptr) {}
