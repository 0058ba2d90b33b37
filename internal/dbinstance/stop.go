package dbinstance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// StopAll stops every cluster this Manager started or adopted. Afterwards
// the Manager starts nothing any more.
func (m *Manager) StopAll(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	insts := maps.Clone(m.insts)
	m.mu.Unlock()
	m.pools.closeAll()
	var errs []error
	for id, e := range insts {
		e.mu.Lock()
		if e.c != nil {
			if err := e.c.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop database instance %s: %w", id, err))
			}
		}
		if e.ep != nil {
			e.ep.Close()
			e.ep = nil
		}
		e.mu.Unlock()
		// A base backup of the stopped server fails now: wait until it has
		// removed its container, so that nothing outlives the Manager.
		e.backupMu.Lock()
		e.backupMu.Unlock()
	}
	if sb := m.cfg.Sandbox; sb != nil {
		// runc leaves the instances' parent cgroup; remove it once empty.
		parents, _ := filepath.Glob("/sys/fs/cgroup/*/" + sb.Prefix)
		for _, p := range append(parents, "/sys/fs/cgroup/"+sb.Prefix) {
			os.Remove(p)
		}
	}
	return errors.Join(errs...)
}

// Destroy stops inst's cluster and removes its files, backups and WAL
// archive included. Destroying an instance that does not exist is not an
// error. Only inst.ID and inst.Port are used.
func (m *Manager) Destroy(ctx context.Context, inst hangar.DBInstance) error {
	if err := validateID(inst.ID); err != nil {
		return err
	}
	m.mu.Lock()
	e := m.insts[inst.ID]
	if e == nil {
		e = &instance{}
		m.insts[inst.ID] = e
	}
	m.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.backupMu.Lock() // let a running base backup finish first
	defer e.backupMu.Unlock()
	m.pools.closeInstance(inst.ID)
	dir := m.dir(inst)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		m.forget(inst.ID, e)
		return nil
	}
	if err := m.stopCluster(ctx, e, inst); err != nil {
		return fmt.Errorf("destroy database instance %s: %w", inst.ID, err)
	}
	if err := errors.Join(os.RemoveAll(dir), os.RemoveAll(m.bundleDir(inst))); err != nil {
		return fmt.Errorf("destroy database instance %s: %w", inst.ID, err)
	}
	m.forget(inst.ID, e)
	return nil
}

// Stop stops inst's server when it runs (sandboxed: in this Manager's
// container of it), without starting anything, and forgets it. A replica
// taking over a dead one stops the servers that one left running through
// a Manager of its sandbox prefix (docs/replicas.md). Only inst.ID and
// inst.Port are used.
func (m *Manager) Stop(ctx context.Context, inst hangar.DBInstance) error {
	if err := validateID(inst.ID); err != nil {
		return err
	}
	e, unlock, err := m.lock(inst)
	if err != nil {
		return err
	}
	defer unlock()
	m.pools.closeInstance(inst.ID)
	if _, err := os.Stat(m.dir(inst)); errors.Is(err, os.ErrNotExist) {
		m.forget(inst.ID, e)
		return nil
	}
	if err := m.stopCluster(ctx, e, inst); err != nil {
		return fmt.Errorf("stop database instance %s: %w", inst.ID, err)
	}
	m.forget(inst.ID, e)
	return nil
}

// stopCluster stops inst's server, if it runs, and closes its port,
// without opening one; e.mu is held and inst's directory exists.
func (m *Manager) stopCluster(ctx context.Context, e *instance, inst hangar.DBInstance) error {
	c := e.c
	if c == nil {
		// Stop needs neither the port nor the password: any valid ones do.
		inst.Port = cmp.Or(inst.Port, 5432)
		inst.AdminUser, inst.AdminPassword = cmp.Or(inst.AdminUser, "postgres"), cmp.Or(inst.AdminPassword, "unused")
		var uid uint32
		if m.cfg.Sandbox != nil {
			var err error
			if uid, err = ownerOf(m.dir(inst)); err != nil {
				return err
			}
		}
		var err error
		if c, err = m.newCluster(inst, inst.Port, uid); err != nil {
			return err
		}
	}
	if err := c.Stop(ctx); err != nil {
		return err
	}
	if e.ep != nil {
		e.ep.Close()
		e.ep = nil
	}
	return nil
}

// forget drops a destroyed instance's bookkeeping; e.mu is held.
func (m *Manager) forget(id string, e *instance) {
	e.gone, e.c = true, nil
	m.mu.Lock()
	if m.insts[id] == e {
		delete(m.insts, id)
	}
	m.mu.Unlock()
}
