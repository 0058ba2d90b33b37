package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"

	"gopkg.in/yaml.v3"
)

// defaultConfigFile is the official CLI's default --configFile, and the name
// the interpolated config gets in the archive.
const defaultConfigFile = "dbos-config.yaml"

// dbosConfig is the part of dbos-config.yaml the CLI reads.
type dbosConfig struct {
	Name     string `yaml:"name"`
	Language string `yaml:"language"`
	Database struct {
		AppDBName string `yaml:"app_db_name"`
	} `yaml:"database"`
}

func parseConfig(b []byte, file string) (dbosConfig, error) {
	var c dbosConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("Failed to load config from %s: %w", file, err)
	}
	if c.Language == "" {
		c.Language = "node"
	}
	return c, nil
}

// loadConfig reads file; a missing file is an empty config (language node).
func (e *env) loadConfig(file string) (dbosConfig, error) {
	b, err := os.ReadFile(e.path(file))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return dbosConfig{}, fmt.Errorf("Failed to load config from %s: %w", file, err)
	}
	return parseConfig(b, file)
}

// appName returns name, else the name in the config file, else the one in
// package.json, like the official retrieveApplicationName. quiet drops the
// line saying where the name came from.
func (e *env) appName(name, configFile string, quiet bool) (string, error) {
	if name != "" {
		return name, nil
	}
	say := func(from, name string) {
		if !quiet {
			e.info("Loaded application name from %s: %s", from, name)
		}
	}
	c, err := e.loadConfig(configFile)
	if err != nil {
		return "", err
	}
	if c.Name != "" {
		say(defaultConfigFile, c.Name)
		return c.Name, nil
	}
	var pkg struct {
		Name string `json:"name"`
	}
	b, err := os.ReadFile(e.path("package.json"))
	if err == nil {
		err = json.Unmarshal(b, &pkg)
	}
	if err != nil || pkg.Name == "" {
		return "", errors.New("Error: cannot find a valid package.json file. Please run this command in an application root directory, or name the application.")
	}
	say("package.json", pkg.Name)
	return pkg.Name, nil
}

var placeholder = regexp.MustCompile(`\$\{([^}]+)\}`)

// interpolate replaces each ${VAR} in a config file with the variable's
// value, empty when unset, warning like the official CLI except for the
// variables the cloud sets itself.
func (e *env) interpolate(b []byte) []byte {
	return placeholder.ReplaceAllFunc(b, func(m []byte) []byte {
		name := string(placeholder.FindSubmatch(m)[1])
		v := e.getenv(name)
		switch {
		case v != "":
			e.debug("      Substituting value of '%s' from process environment.", name)
		case name != "PGPASSWORD" && name != "DBOS_DATABASE_URL":
			e.warn("      Variable '%s' would be substituted from the process environment, but is not defined.", name)
		}
		return []byte(v)
	})
}
