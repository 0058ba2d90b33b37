//go:build !linux

package image

import (
	"context"
	"errors"
)

// Create is unsupported off Linux.
func (d *Disks) Create(context.Context, string) error { return errors.ErrUnsupported }

// Open is unsupported off Linux.
func (d *Disks) Open(context.Context, string) error { return errors.ErrUnsupported }

// RemoveAll is unsupported off Linux.
func (d *Disks) RemoveAll(context.Context, string) error { return errors.ErrUnsupported }

// Restore is unsupported off Linux.
func (d *Disks) Restore(context.Context, string) error { return errors.ErrUnsupported }
