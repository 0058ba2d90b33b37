//go:build !linux

package build

func diskFull(string) bool { return false }
