package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// summary is the part of the kubelet's summary API (stats/summary, the
// source of the resource metrics pipeline) that Stats reads.
type summary struct {
	Pods []struct {
		PodRef struct {
			Name, Namespace string
		} `json:"podRef"`
		Containers []struct {
			Name   string                                  `json:"name"`
			CPU    *struct{ UsageCoreNanoSeconds *uint64 } `json:"cpu"`
			Memory *struct {
				UsageBytes      *uint64 `json:"usageBytes"`
				WorkingSetBytes *uint64 `json:"workingSetBytes"`
			} `json:"memory"`
		} `json:"containers"`
		ProcessStats *struct {
			ProcessCount *uint64 `json:"process_count"`
		} `json:"process_stats"`
	} `json:"pods"`
}

// Stats reads the executor's container from its node's kubelet summary,
// through the API server's node proxy (RBAC: nodes/proxy get). The kubelet
// samples every few seconds: a container too young to have a sample, and
// one that exited before any Stats call read it, report KindUnavailable.
// See runtime.Driver.
func (d *Driver) Stats(ctx context.Context, id string) (runtime.Stats, error) {
	e, done, err := d.execs.Started(id)
	if err != nil {
		return runtime.Stats{}, err
	}
	select {
	case <-done:
		e.statsMu.Lock()
		defer e.statsMu.Unlock()
		if e.last == nil {
			return runtime.Stats{}, hangar.Errorf(hangar.KindUnavailable, "executor %s exited before its resource use was sampled", id)
		}
		return *e.last, nil
	default:
	}
	node := e.w.nodeName()
	if node == "" {
		return runtime.Stats{}, hangar.Errorf(hangar.KindUnavailable, "executor %s has no node yet", id)
	}
	b, err := d.cs.CoreV1().RESTClient().Get().Resource("nodes").Name(node).SubResource("proxy").Suffix("stats/summary").Do(ctx).Raw()
	if err != nil {
		return runtime.Stats{}, hangar.Errorf(hangar.KindUnavailable, "stats of executor %s: kubelet summary of node %s: %v", id, node, err)
	}
	var s summary
	if err := json.Unmarshal(b, &s); err != nil {
		return runtime.Stats{}, fmt.Errorf("stats of executor %s: %w", id, err)
	}
	for _, p := range s.Pods {
		if p.PodRef.Namespace != d.cfg.Namespace || p.PodRef.Name != e.Name {
			continue
		}
		for _, c := range p.Containers {
			if c.Name != containerName || c.Memory == nil || c.Memory.WorkingSetBytes == nil || c.CPU == nil || c.CPU.UsageCoreNanoSeconds == nil {
				continue
			}
			st := runtime.Stats{
				MemoryBytes:      *c.Memory.WorkingSetBytes,
				MemoryLimitBytes: uint64(e.w.memoryMiB) << 20,
				CPU:              time.Duration(*c.CPU.UsageCoreNanoSeconds),
			}
			// Nodes that do not count a Pod's processes (the test
			// cluster's, on cgroup v1) report none: the running Pod
			// has its init at least.
			st.Pids = 1
			if p.ProcessStats != nil && p.ProcessStats.ProcessCount != nil && *p.ProcessStats.ProcessCount > 0 {
				st.Pids = *p.ProcessStats.ProcessCount
			}
			e.statsMu.Lock()
			e.last = &st
			e.statsMu.Unlock()
			return st, nil
		}
	}
	return runtime.Stats{}, hangar.Errorf(hangar.KindUnavailable, "executor %s: the kubelet has no sample of its container yet", id)
}
