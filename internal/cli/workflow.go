package cli

import (
	"context"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

const statusHelp = "(PENDING, SUCCESS, ERROR, RETRIES_EXCEEDED, ENQUEUED, or CANCELLED)"

func newWorkflowCmd(e *env) *cobra.Command {
	cmd := group("workflow", "Manage DBOS workflows", "workflows", "wf")
	queue := group("queue", "Manage DBOS queues", "queues", "q")
	queue.AddCommand(newQueueListCmd(e))
	cmd.AddCommand(
		newWorkflowListCmd(e),
		workflowAction(e, "cancel", "Cancel a workflow so it is no longer automatically retried or restarted"),
		workflowAction(e, "resume", "Resume a workflow from the last step it executed, keeping its workflow ID"),
		workflowAction(e, "restart", "Restart a workflow from the beginning with a new workflow ID"),
		queue,
	)
	return cmd
}

// listFlags are the filters workflow list and queue list share.
type listFlags struct {
	req           apiclient.ListWorkflowsRequest
	limit, offset int
	status        string
}

func (l *listFlags) add(fs *pflag.FlagSet, what string, defLimit int) {
	fs.IntVarP(&l.limit, "limit", "l", defLimit, "Limit the results returned")
	fs.IntVarP(&l.offset, "offset", "o", 0, "Skip "+what+" from the results returned.")
	fs.StringVarP(&l.req.StartTime, "start-time", "s", "", "Retrieve "+what+" starting after this timestamp (ISO 8601 format)")
	fs.StringVarP(&l.req.EndTime, "end-time", "e", "", "Retrieve "+what+" starting before this timestamp (ISO 8601 format)")
	fs.StringVarP(&l.status, "status", "S", "", "Retrieve "+what+" with this status "+statusHelp)
	fs.StringVarP(&l.req.WorkflowName, "name", "n", "", "Retrieve functions with this name")
	fs.BoolVar(&l.req.SortDesc, "sort-desc", false, "Sort outputs by creation time in descending order (else ascending)")
}

// request is the filters as the official CLI sends them: an unset limit
// or offset is omitted (it sends NaN, which JSON makes null).
func (l *listFlags) request(fs *pflag.FlagSet) apiclient.ListWorkflowsRequest {
	req := l.req
	if l.limit != 0 || fs.Changed("limit") {
		req.Limit = &l.limit
	}
	if fs.Changed("offset") {
		req.Offset = &l.offset
	}
	if l.status != "" {
		req.Status = l.status
	}
	return req
}

func (e *env) listWorkflows(ctx context.Context, s *session, app string, queues bool, req apiclient.ListWorkflowsRequest) error {
	out, err := s.Workflows(ctx, s.org(), app, queues, req)
	if err != nil {
		return e.failed("Failed to list workflows for application "+app, err)
	}
	e.info("%s", out)
	return nil
}

func newWorkflowListCmd(e *env) *cobra.Command {
	var l listFlags
	quiet := true
	var cmd *cobra.Command
	cmd = appCommand(e, "list", "List workflows from your application", &quiet, func(ctx context.Context, s *session, app string) error {
		return e.listWorkflows(ctx, s, app, false, l.request(cmd.Flags()))
	})
	l.add(cmd.Flags(), "workflows", 10)
	cmd.Flags().StringArrayVarP(&l.req.WorkflowUUIDs, "workflowUUIDs", "u", nil, "Retrieve specific UUIDs (repeat the flag for several)")
	cmd.Flags().StringVarP(&l.req.AuthenticatedUser, "user", "U", "", "Retrieve workflows run by this user")
	cmd.Flags().StringVarP(&l.req.ApplicationVersion, "application-version", "v", "", "Retrieve workflows with this application version")
	return cmd
}

func newQueueListCmd(e *env) *cobra.Command {
	var l listFlags
	quiet := true
	var cmd *cobra.Command
	cmd = appCommand(e, "list", "List enqueued functions from your application", &quiet, func(ctx context.Context, s *session, app string) error {
		return e.listWorkflows(ctx, s, app, true, l.request(cmd.Flags()))
	})
	l.add(cmd.Flags(), "functions", 0)
	cmd.Flags().StringVarP(&l.req.QueueName, "queue", "q", "", "Retrieve functions run on this queue")
	return cmd
}

func workflowAction(e *env, action, short string) *cobra.Command {
	var id string
	quiet := true
	cmd := appCommand(e, action, short, &quiet, func(ctx context.Context, s *session, app string) error {
		if err := s.WorkflowAction(ctx, s.org(), app, id, action); err != nil {
			return e.failed("Failed to "+action+" workflow "+id+" in application "+app, err)
		}
		return nil
	})
	cmd.Flags().StringVarP(&id, "workflowid", "w", "", "The ID of the workflow to "+action)
	cmd.MarkFlagRequired("workflowid")
	return cmd
}
