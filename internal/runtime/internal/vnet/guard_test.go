package vnet

import (
	"testing"

	"github.com/hangar-oss/hangar/internal/golden"
)

func TestGuardRules_Golden(t *testing.T) {
	t.Parallel()
	golden.Check(t, golden.File("guard"), guardRules("hg-app-v1-0", "10.213.0.5", []int{5432, 6379})+
		"# no forwards\n"+guardRules("hg-app-v1-0", "10.213.0.5", nil))
}
