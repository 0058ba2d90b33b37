//go:build !linux

package image

func unmountUnder(string) error { return nil }
