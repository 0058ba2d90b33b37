//go:build !linux

package sandbox

import "errors"

func checkHost() error { return errors.ErrUnsupported }

func bindRootfs(string) error { return errors.ErrUnsupported }

func unmount(string) error { return errors.ErrUnsupported }

func shareDir(string, uint32) error { return errors.ErrUnsupported }

func (*Driver) stepRootfs(string, step) error { return errors.ErrUnsupported }

func removeStepBundle(string) error { return errors.ErrUnsupported }

func mountImage(step, string) error { return errors.ErrUnsupported }
