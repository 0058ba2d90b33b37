//go:build !unix

package build

import "errors"

func syscallMkfifo(string) error { return errors.ErrUnsupported }
