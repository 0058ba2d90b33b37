package build

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// ConfigFile is the name of the app configuration file at the archive root.
const ConfigFile = "dbos-config.yaml"

// Config is what Hangar uses of an app's dbos-config.yaml (API.md §3).
// Connection fields are ignored: Hangar injects the database settings.
type Config struct {
	// Name is the app's registered name.
	Name string
	// Language is the app's runtime; node when the file names none.
	Language hangar.Language
	// Runtime is runtimeConfig.
	Runtime struct {
		// Start lists the commands that start the app, run in order in a
		// shell. When the file names none, ParseConfig fills in the
		// language's default: node "npm start", python "python3 main.py",
		// go "./main".
		Start []string
		// Setup lists the commands run before dependencies are installed.
		Setup []string
	}
	// Database is the database section.
	Database struct {
		// Migrate lists the commands run at each deploy, before the new
		// version starts.
		Migrate []string
		// AppDBName is the deprecated app database name override.
		AppDBName string
	}
	// Env is the deprecated env section: variables exported to the app.
	Env map[string]string
}

// fileConfig is the YAML shape of dbos-config.yaml. Unknown fields are
// ignored, as the DBOS SDKs ignore them.
type fileConfig struct {
	Name          string            `yaml:"name"`
	Language      string            `yaml:"language"`
	RuntimeConfig runtimeConfig     `yaml:"runtimeConfig"`
	Database      databaseConfig    `yaml:"database"`
	Env           map[string]string `yaml:"env"`
}

type runtimeConfig struct {
	Start commands `yaml:"start"`
	Setup commands `yaml:"setup"`
}

type databaseConfig struct {
	Migrate   commands `yaml:"migrate"`
	AppDBName string   `yaml:"app_db_name"`
}

// commands is a list of shell commands; the file may give a single string.
type commands []string

func (c *commands) UnmarshalYAML(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		*c = nil
		return nil
	case n.Kind == yaml.ScalarNode:
		*c = commands{n.Value}
		return nil
	case n.Kind == yaml.SequenceNode:
		var s []string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*c = s
		return nil
	}
	return fmt.Errorf("yaml: line %d: expected a command or a list of commands", n.Line)
}

// ParseConfig parses the contents of a dbos-config.yaml and validates it. A
// malformed or invalid file is a KindInvalid error whose message names the
// file and, for YAML errors, the line.
func ParseConfig(data []byte) (Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, configError(err)
	}
	var fc fileConfig
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return Config{}, hangar.Errorf(hangar.KindInvalid, "%s: line %d: expected a mapping of fields such as name and language", ConfigFile, root.Line)
		}
		if err := root.Decode(&fc); err != nil {
			return Config{}, configError(err)
		}
	}

	var c Config
	c.Name = strings.TrimSpace(fc.Name)
	if c.Name == "" {
		return Config{}, hangar.Errorf(hangar.KindInvalid, "%s: name is required: set it to the application's name", ConfigFile)
	}
	lang, err := hangar.ParseLanguage(fc.Language)
	if err != nil {
		return Config{}, hangar.Errorf(hangar.KindInvalid, "%s: %s", ConfigFile, hangar.MessageOf(err))
	}
	c.Language = lang
	if fc.Database.AppDBName != "" {
		if err := hangar.ValidatePGIdent("database.app_db_name", fc.Database.AppDBName); err != nil {
			return Config{}, hangar.Errorf(hangar.KindInvalid, "%s: %s", ConfigFile, hangar.MessageOf(err))
		}
	}
	c.Runtime.Start = fc.RuntimeConfig.Start
	if len(c.Runtime.Start) == 0 {
		c.Runtime.Start = defaultStart(lang)
	}
	c.Runtime.Setup = fc.RuntimeConfig.Setup
	c.Database.Migrate = fc.Database.Migrate
	c.Database.AppDBName = fc.Database.AppDBName
	c.Env = fc.Env
	return c, nil
}

// defaultStart is the start command of an app whose file names none.
// Hangar decides: the conventional entry point of each language, kept simple
// on purpose; apps that need more set runtimeConfig.start.
func defaultStart(l hangar.Language) []string {
	switch l {
	case hangar.LanguagePython:
		return []string{"python3 main.py"}
	case hangar.LanguageGo:
		return []string{"./main"}
	default:
		return []string{"npm start"}
	}
}

// configError turns a YAML error into a one-line KindInvalid error that
// keeps the parser's line numbers.
func configError(err error) error {
	msg := strings.ReplaceAll(err.Error(), ":\n  ", ": ")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	return hangar.Errorf(hangar.KindInvalid, "%s: %s", ConfigFile, msg)
}

// LoadConfig reads and parses dir/dbos-config.yaml.
func LoadConfig(dir string) (Config, error) {
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, hangar.Errorf(hangar.KindInvalid, "%s not found at the root of the archive: deploy from the folder that holds it", ConfigFile)
	}
	if err != nil {
		return Config{}, fmt.Errorf("read %s: %w", ConfigFile, err)
	}
	return ParseConfig(data)
}
