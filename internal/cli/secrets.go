package cli

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

func newSecretsCmd(e *env) *cobra.Command {
	cmd := group("env", "Manage your application environment variables", "environment", "secrets", "sec", "secret")
	cmd.AddCommand(newSecretCreateCmd(e), newSecretImportCmd(e), newSecretListCmd(e), newSecretDeleteCmd(e))
	return cmd
}

func newSecretCreateCmd(e *env) *cobra.Command {
	var name, value string
	cmd := appCommand(e, "create", "Create an environment variable for this application", nil, func(ctx context.Context, s *session, app string) error {
		return e.createSecret(ctx, s, apiclient.CreateSecretRequest{ApplicationName: app, SecretName: name, ClearSecretValue: value})
	})
	cmd.Flags().StringVarP(&name, "name", "s", "", "Specify the name of the variable to create")
	cmd.Flags().StringVarP(&value, "value", "v", "", "Specify the value of the variable")
	cmd.MarkFlagRequired("name")
	cmd.MarkFlagRequired("value")
	return cmd
}

func (e *env) createSecret(ctx context.Context, s *session, req apiclient.CreateSecretRequest) error {
	if req.SecretName == "" {
		return errors.New("Variable name is required.")
	}
	if req.ClearSecretValue == "" {
		return errors.New("Variable value is required.")
	}
	if err := s.CreateSecret(ctx, s.org(), req); err != nil {
		return e.failed("Failed to create variable for application "+req.ApplicationName, err)
	}
	e.info("Variable %s successfully updated!", req.SecretName)
	return nil
}

func newSecretImportCmd(e *env) *cobra.Command {
	var file string
	cmd := appCommand(e, "import", "Import environment variables from a dotenv file", nil, func(ctx context.Context, s *session, app string) error {
		e.info("Importing variables from %s", file)
		b, err := os.ReadFile(e.path(file))
		if err != nil {
			return err
		}
		for _, v := range expandDotenv(parseDotenv(string(b)), e.getenv) {
			if err := e.createSecret(ctx, s, apiclient.CreateSecretRequest{ApplicationName: app, SecretName: v[0], ClearSecretValue: v[1]}); err != nil {
				return err
			}
		}
		return nil
	})
	cmd.Flags().StringVarP(&file, "dotenv", "d", "", "Path to a dotenv file")
	cmd.MarkFlagRequired("dotenv")
	return cmd
}

func newSecretListCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := appCommand(e, "list", "List environment variables for this application", nil, func(ctx context.Context, s *session, app string) error {
		names, err := s.Secrets(ctx, s.org(), app)
		if err != nil {
			return e.failed("Failed to list variables for application "+app, err)
		}
		if asJSON {
			return e.printJSON(names)
		}
		for _, n := range names {
			e.info("%s", n)
		}
		return nil
	})
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newSecretDeleteCmd(e *env) *cobra.Command {
	var name string
	cmd := appCommand(e, "delete", "Delete an environment variable for this application", nil, func(ctx context.Context, s *session, app string) error {
		if err := s.DeleteSecret(ctx, s.org(), app, name); err != nil {
			return e.failed("Failed to delete secrets for application "+app, err)
		}
		e.info("Secrets successfully deleted for application %s", app)
		return nil
	})
	cmd.Flags().StringVarP(&name, "name", "s", "", "Specify the name of the variable to delete")
	cmd.MarkFlagRequired("name")
	return cmd
}

// dotenvLine is dotenv 16's LINE.
var dotenvLine = regexp.MustCompile("(?m)(?:^|^)\\s*(?:export\\s+)?([\\w.-]+)(?:\\s*=\\s*?|:\\s+?)(\\s*'(?:\\\\'|[^'])*'|\\s*\"(?:\\\\\"|[^\"])*\"|\\s*`(?:\\\\`|[^`])*`|[^#\\r\\n]+)?\\s*(?:#.*)?(?:$|$)")

// parseDotenv is dotenv's parse: the variables in file order, a repeated
// one keeping its first place and its last value.
func parseDotenv(src string) [][2]string {
	src = strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(src)
	var out [][2]string
	at := map[string]int{}
	for _, m := range dotenvLine.FindAllStringSubmatch(src, -1) {
		v := strings.TrimSpace(m[2])
		q := byte(0)
		if len(v) >= 2 && strings.IndexByte("'\"`", v[0]) >= 0 && v[len(v)-1] == v[0] {
			q, v = v[0], v[1:len(v)-1]
		}
		if q == '"' {
			v = strings.NewReplacer(`\n`, "\n", `\r`, "\r").Replace(v)
		}
		if i, ok := at[m[1]]; ok {
			out[i][1] = v
			continue
		}
		at[m[1]] = len(out)
		out = append(out, [2]string{m[1], v})
	}
	return out
}

var dotenvRef = regexp.MustCompile(`(\\)?\$(?:\{([^{}]+)\}|([A-Za-z_][A-Za-z0-9_]*))`)

// expandDotenv is dotenv-expand 12's expand: a variable set in the
// environment keeps the environment's value; others get ${VAR}, $VAR,
// ${VAR:-default}, ${VAR-default}, ${VAR:+alt} and ${VAR+alt} expanded from
// the environment and the variables before them; \$ is a literal $.
func expandDotenv(vars [][2]string, getenv func(string) string) [][2]string {
	parsed := map[string]string{}
	lookup := func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return parsed[k]
	}
	out := make([][2]string, len(vars))
	for i, kv := range vars {
		v := getenv(kv[0])
		if v == "" {
			v = expandValue(kv[1], lookup, parsed)
		}
		v = strings.ReplaceAll(v, `\$`, "$")
		parsed[kv[0]] = v
		out[i] = [2]string{kv[0], v}
	}
	return out
}

var dotenvOp = regexp.MustCompile(`:\+|\+|:-|-`)

func expandValue(result string, lookup func(string) string, parsed map[string]string) string {
	seen := map[string]bool{}
	for range 1000 {
		m := firstUnescaped(result)
		if m == nil {
			break
		}
		seen[result] = true
		template, expr := result[m[0]:m[1]], ""
		if m[4] >= 0 {
			expr = result[m[4]:m[5]]
		} else {
			expr = result[m[6]:m[7]]
		}
		key, def, op := expr, "", ""
		if loc := dotenvOp.FindStringIndex(expr); loc != nil {
			op = expr[loc[0]:loc[1]]
			parts := strings.Split(expr, op)
			key, def = parts[0], strings.Join(parts[1:], op)
		}
		value := ""
		if op == ":+" || op == "+" {
			if lookup(key) == "" {
				def = ""
			}
		} else {
			value = lookup(key)
		}
		if value != "" && !seen[value] {
			result = strings.Replace(result, template, value, 1)
		} else {
			result = strings.Replace(result, template, def, 1)
		}
		if p, ok := parsed[key]; ok && result == p {
			break
		}
	}
	return result
}

// firstUnescaped returns the submatch indexes of the first reference not
// preceded by a backslash.
func firstUnescaped(s string) []int {
	for _, m := range dotenvRef.FindAllStringSubmatchIndex(s, -1) {
		if m[2] < 0 {
			return m
		}
	}
	return nil
}
