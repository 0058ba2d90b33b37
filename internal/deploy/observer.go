package deploy

import "time"

// Observer is told of what the Service does, for metrics: the composition
// root passes one in Config, so that this package needs no metrics library.
// Its methods run on the Service's goroutines, while it works: they must
// return at once and must not call the Service.
type Observer interface {
	// DeployEnded is called when a deploy workflow ends: ok when the new
	// version serves, not ok when a step failed.
	DeployEnded(ok bool)
	// StepEnded is called when a deploy step (StepUpload, …) ends, failed
	// or not, after d.
	StepEnded(step string, d time.Duration)
}

// nopObserver is the Observer of a Service configured without one.
type nopObserver struct{}

func (nopObserver) DeployEnded(bool)                {}
func (nopObserver) StepEnded(string, time.Duration) {}

// observer returns the configured Observer, or one that ignores everything.
func (s *Service) observer() Observer {
	if s.cfg.Observer == nil {
		return nopObserver{}
	}
	return s.cfg.Observer
}
