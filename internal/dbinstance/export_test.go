package dbinstance

import "time"

// SetPoolClock makes m's pools of system database connections tell time
// by now.
func SetPoolClock(m *Manager, now func() time.Time) {
	m.pools.mu.Lock()
	defer m.pools.mu.Unlock()
	m.pools.now = now
}

// OpenPools returns how many pools of system database connections m has.
func OpenPools(m *Manager) int { return m.pools.count() }
