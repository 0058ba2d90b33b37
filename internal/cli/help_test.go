package cli

import (
	"bytes"
	"github.com/hangar-oss/hangar/internal/golden"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// commands lists every command path under c, the root first.
func commands(c *cobra.Command) [][]string {
	out := [][]string{nil}
	for _, sub := range c.Commands() {
		if sub.Name() == "help" {
			continue
		}
		for _, p := range commands(sub) {
			out = append(out, append([]string{sub.Name()}, p...))
		}
	}
	return out
}

// TestHelp_Golden checks --help of every command against testdata/help/.
func TestHelp_Golden(t *testing.T) {
	t.Parallel()
	for _, path := range commands((&env{}).newRootCmd()) {
		name := strings.Join(append([]string{"dbos-cloud"}, path...), "_")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), append(path, "--help"), nil, &stdout, &stderr, func(string) string { return "" })
			if code != 0 || stderr.Len() > 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr.String())
			}
			golden.Check(t, filepath.Join("testdata", "help", name+".golden"), stdout.String())
		})
	}
}

// officialCommand is a command as the official CLI's dist/cli.js declares it.
type officialCommand struct {
	path    []string
	aliases []string
	args    string // "<" and "[" of each argument, in order
	options []officialOption
}

type officialOption struct {
	short, long string
	value       bool   // takes a value
	def         string // default, when it is a literal
}

var (
	commandDecl = regexp.MustCompile(`(?:const (\w+) = )?(\w+)\s*\.command\('([^']+)'\)`)
	chainCall   = regexp.MustCompile(`\.(alias|argument|option|requiredOption)\(\s*'([^']*)'(?:\s*,\s*(?:'[^']*'|"[^"]*"|` + "`[^`]*`" + `))?(?:\s*,\s*('[^']*'|\w+))?`)
	optionFlags = regexp.MustCompile(`^(?:-(\w), )?--([\w-]+)(?: [<\[].*)?$`)
)

// parseOfficial reads the command tree from the official CLI's dist/cli.js.
func parseOfficial(t *testing.T, src string) []officialCommand {
	t.Helper()
	vars := map[string][]string{"program": nil}
	decls := commandDecl.FindAllStringSubmatchIndex(src, -1)
	var out []officialCommand
	for i, d := range decls {
		parent, ok := vars[src[d[4]:d[5]]]
		if !ok {
			t.Fatalf("cli.js: unknown receiver %q", src[d[4]:d[5]])
		}
		c := officialCommand{path: append(slices.Clone(parent), src[d[6]:d[7]])}
		if d[2] >= 0 {
			vars[src[d[2]:d[3]]] = c.path
		}
		end := len(src)
		if i+1 < len(decls) {
			end = decls[i+1][0]
		}
		for _, m := range chainCall.FindAllStringSubmatch(src[d[1]:end], -1) {
			switch m[1] {
			case "alias":
				c.aliases = append(c.aliases, m[2])
			case "argument":
				c.args += m[2][:1]
			default:
				f := optionFlags.FindStringSubmatch(m[2])
				if f == nil {
					t.Fatalf("cli.js: cannot read option %q", m[2])
				}
				o := officialOption{short: f[1], long: f[2], value: strings.ContainsAny(m[2], "<[")}
				switch def := m[3]; {
				case strings.HasPrefix(def, "'"):
					o.def = strings.Trim(def, "'")
				case def == "defaultConfigFilePath":
					o.def = defaultConfigFile
				case def == "false":
					o.def = "false"
				}
				c.options = append(c.options, o)
			}
		}
		out = append(out, c)
	}
	return out
}

// TestHelp_OfficialCommandTree checks that every command, alias, argument and
// option of the official CLI exists in ours, with the same short flag,
// kind and default.
func TestHelp_OfficialCommandTree(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join(officialCLI(t), "dist", "cli.js"))
	if err != nil {
		t.Fatal(err)
	}
	official := parseOfficial(t, string(src))
	if len(official) < 40 {
		t.Fatalf("read %d commands from cli.js, want the whole tree", len(official))
	}
	root := (&env{}).newRootCmd()
	t.Logf("%d official commands", len(official))
	for _, oc := range official {
		name := strings.Join(oc.path, " ")
		cmd, rest, err := root.Find(oc.path)
		if err != nil || len(rest) > 0 || cmd.Name() != oc.path[len(oc.path)-1] {
			t.Errorf("%s: no such command in ours", name)
			continue
		}
		for _, a := range oc.aliases {
			if !slices.Contains(cmd.Aliases, a) {
				t.Errorf("%s: alias %q missing (have %v)", name, a, cmd.Aliases)
			}
		}
		var args string
		for _, f := range strings.Fields(cmd.Use)[1:] {
			args += f[:1]
		}
		if args != oc.args {
			t.Errorf("%s: arguments %q, want %q (< required, [ optional)", name, args, oc.args)
		}
		for _, o := range oc.options {
			f := cmd.Flags().Lookup(o.long)
			if f == nil {
				f = cmd.InheritedFlags().Lookup(o.long)
			}
			if f == nil {
				t.Errorf("%s: flag --%s missing", name, o.long)
				continue
			}
			if f.Shorthand != o.short {
				t.Errorf("%s --%s: short flag %q, want %q", name, o.long, f.Shorthand, o.short)
			}
			takesValue := f.Value.Type() != "bool"
			if takesValue != o.value && !(f.NoOptDefVal != "" && !o.value) {
				t.Errorf("%s --%s: takes a value %t, want %t", name, o.long, takesValue, o.value)
			}
			if o.def != "" && f.DefValue != o.def {
				t.Errorf("%s --%s: default %q, want %q", name, o.long, f.DefValue, o.def)
			}
		}
	}
}
