package evloop

// Scheduling within a turn of the loop: tasks that start, wake or cancel
// other tasks of their own loop do it without the eventfd's system call
// (the HTTP/2 connection's task and its streams).

// Go runs f as a new task on t's loop, started in the loop's current
// turn once t parks: for a connection's task that starts one per request
// (HTTP/2's streams), which must not wait for a turn of their own. Only
// t's own code may call it.
func (t *Task) Go(f func(t *Task)) {
	n := t.l.newTask(f)
	n.soon = true
	t.l.soon = append(t.l.soon, n)
}

// Schedule resumes t, parked, in its loop's current turn, after the task
// running now parks: for one task that has something for another of the
// same loop (a stream's frames for its connection's task, which writes
// them), without Wake's system call. A task running now returns at once
// from its next park instead. Only code on t's loop's goroutine (a task
// of t's loop, a function posted there) may call it.
func (t *Task) Schedule() {
	if !t.parked.Load() {
		t.pending.Store(true)
		return
	}
	if !t.soon {
		t.soon = true
		t.l.soon = append(t.l.soon, t)
	}
}

// CancelSoon is Cancel for code running on t's loop other than t: t's
// waits fail from now on, and t resumes in the loop's current turn
// (Schedule).
func (t *Task) CancelSoon() {
	t.cancel = true
	t.Schedule()
}
