package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newOrgCmd(e *env) *cobra.Command {
	cmd := group("organization", "Manage dbos organizations", "organizations", "org")
	cmd.AddCommand(newOrgInviteCmd(e), newOrgListCmd(e), newOrgRenameCmd(e), newOrgJoinCmd(e), newOrgRemoveCmd(e))
	return cmd
}

// orgCommand returns an organization command; run gets a session.
func orgCommand(e *env, use, short string, run func(cmd *cobra.Command, s *session, args []string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  argsOf(use),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := e.session(cmd.Context(), "", "")
			if err != nil {
				return err
			}
			return run(cmd, s, args)
		},
	}
}

func newOrgInviteCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := orgCommand(e, "invite", "Generate an invite secret for a user to join your organization", func(cmd *cobra.Command, s *session, _ []string) error {
		secret, err := s.InviteSecret(cmd.Context(), s.org())
		if err != nil {
			return e.failed("Failed to retrieve invite secret for organization "+s.org(), err)
		}
		if asJSON {
			return e.printJSON(secret)
		}
		e.info("To invite a user to your organization, %s, give them this single-use secret: ", s.org())
		e.info("%s", secret)
		return nil
	})
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newOrgListCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := orgCommand(e, "list", "List users in your organization", func(cmd *cobra.Command, s *session, _ []string) error {
		users, err := s.OrgUsers(cmd.Context(), s.org())
		if err != nil {
			return e.failed("Failed to retrieve users for organization "+s.org(), err)
		}
		if asJSON {
			return e.printJSON(users)
		}
		e.info("Users in organization %s: ", s.org())
		for _, u := range users.UserNames {
			e.info("%s", u)
		}
		return nil
	})
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newOrgRenameCmd(e *env) *cobra.Command {
	return orgCommand(e, "rename <oldname> <newname>", "Rename the organization", func(cmd *cobra.Command, s *session, args []string) error {
		old, name := args[0], args[1]
		if s.org() != old {
			return fmt.Errorf("You are currently authenticated to organization %s, but you are trying to rename %s. Please logout and login to the correct organization.", s.org(), old)
		}
		if err := s.RenameOrg(cmd.Context(), old, name); err != nil {
			return e.failed("Failed to rename organization "+old, err)
		}
		e.info("Successfully renamed organization %s to %s. Please logout and login to refresh your local context before any further commands.", old, name)
		return nil
	})
}

func newOrgJoinCmd(e *env) *cobra.Command {
	return orgCommand(e, "join <organization> <secret>", "Join an organization with an invite secret", func(cmd *cobra.Command, s *session, args []string) error {
		if err := s.JoinOrg(cmd.Context(), args[0], args[1]); err != nil {
			return e.failed("Failed to join organization "+args[0], err)
		}
		e.info("Successfully joined organization %s. Please logout and login to refresh your local context before any further commands.", args[0])
		return nil
	})
}

func newOrgRemoveCmd(e *env) *cobra.Command {
	return orgCommand(e, "remove <username>", "Remove a user from an organization", func(cmd *cobra.Command, s *session, args []string) error {
		if err := s.RemoveOrgUser(cmd.Context(), s.org(), args[0]); err != nil {
			return e.failed(fmt.Sprintf("Failed to remove %s from organization %s", args[0], s.org()), err)
		}
		e.info("Successfully removed %s from organization %s", args[0], s.org())
		return nil
	})
}
