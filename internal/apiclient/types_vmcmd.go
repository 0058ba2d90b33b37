package apiclient

import (
	"context"
	"net/http"
	"net/url"
)

// MaxCommandBytes bounds ExecutorCommandRequest.Command.
const MaxCommandBytes = 4 << 10

// ExecutorCommandRequest runs a shell command on one executor of an app:
// POST ExecutorCommandPath, the newer official CLI's `app cmd`. The command
// runs with /bin/sh -c, isolated as the app is, for at most 10 s.
type ExecutorCommandRequest struct {
	// Command is 1 to MaxCommandBytes bytes of shell.
	Command string `json:"command"`
}

// ExecutorCommandResponse is what the command printed and how it ended.
// Each output holds its first MiB, then a note of what was dropped.
type ExecutorCommandResponse struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// ExitCode is 128+n when signal n killed the command, 124 when it ran
	// out of time.
	ExitCode int `json:"exitCode"`
}

// ExecutorCommandPath is the route of ExecutorCommand.
func ExecutorCommandPath(org, app, executor string) string {
	return "/vmsadmin/" + url.PathEscape(org) + "/applications/" + url.PathEscape(app) +
		"/vms/" + url.PathEscape(executor) + "/vmcmd"
}

// ExecutorCommand runs command on executor of org's app.
func (c *Client) ExecutorCommand(ctx context.Context, org, app, executor, command string) (ExecutorCommandResponse, error) {
	var out ExecutorCommandResponse
	err := c.Do(ctx, http.MethodPost, ExecutorCommandPath(org, app, executor), ExecutorCommandRequest{Command: command}, &out)
	return out, err
}
