package kube

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

var namespaces = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// manifests returns the objects of the YAML files in deploy/k8s.
func manifests(t *testing.T, names ...string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "k8s", n))
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var o unstructured.Unstructured
			if err := dec.Decode(&o.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			if o.Object != nil {
				out = append(out, &o)
			}
		}
	}
	return out
}

// TestManifests checks the manifests for running Hangar in a cluster
// (deploy/k8s) against the real API server: each object passes a
// server-side dry-run apply, and the account's rights, once applied, are
// those the driver needs in the executors' namespace and none elsewhere.
func TestManifests(t *testing.T) {
	kc := os.Getenv("HANGAR_TEST_KUBECONFIG")
	if kc == "" {
		t.Skip("HANGAR_TEST_KUBECONFIG is not set: run make k8s-test")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(cfg)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cfg)))
	apply := func(o *unstructured.Unstructured, dryRun bool) error {
		m, err := mapper.RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version)
		if err != nil {
			return err
		}
		opts := metav1.ApplyOptions{FieldManager: "hangar-test", Force: true}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		_, err = dyn.Resource(m.Resource).Namespace(o.GetNamespace()).Apply(t.Context(), o.GetName(), o, opts)
		return err
	}
	// The namespaces are made for real: objects in them cannot be
	// dry-run without them.
	for _, o := range manifests(t, "namespaces.yaml") {
		if err := apply(o, false); err != nil {
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
		t.Cleanup(func() {
			dyn.Resource(namespaces).Delete(context.Background(), o.GetName(), metav1.DeleteOptions{})
		})
	}
	all := manifests(t, "namespaces.yaml", "rbac.yaml", "deployment.yaml", "stats-clusterrole.yaml")
	for _, o := range all {
		if err := apply(o, true); err != nil {
			t.Errorf("server-side dry-run apply of %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	if len(all) < 8 {
		t.Errorf("got %d objects, want at least the 2 namespaces, account, role, binding, Deployment, Service and the stats role", len(all))
	}

	for _, o := range manifests(t, "rbac.yaml") {
		if err := apply(o, false); err != nil {
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	for _, tc := range []struct {
		ns, verb, resource, sub, group string
		want                           bool
	}{
		{"hangar", "create", "pods", "", "", true},
		{"hangar", "watch", "pods", "", "", true},
		{"hangar", "delete", "pods", "", "", true},
		{"hangar", "get", "pods", "log", "", true},
		{"hangar", "create", "pods", "exec", "", true},
		{"hangar", "update", "networkpolicies", "", "networking.k8s.io", true},
		{"hangar", "get", "secrets", "", "", false},
		{"hangar", "create", "deployments", "", "apps", false},
		{"default", "create", "pods", "", "", false},
		{"hangar-system", "create", "pods", "", "", false},
		{"", "get", "nodes", "", "", false},
	} {
		r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:hangar-system:hangar",
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:hangar-system", "system:authenticated"},
			ResourceAttributes: &authzv1.ResourceAttributes{Namespace: tc.ns, Verb: tc.verb, Group: tc.group, Resource: tc.resource, Subresource: tc.sub},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status.Allowed != tc.want {
			t.Errorf("may hangar %s %s/%s in namespace %q: got %v, want %v", tc.verb, tc.resource, tc.sub, tc.ns, r.Status.Allowed, tc.want)
		}
	}
}
