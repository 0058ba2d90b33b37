package kube

import (
	"context"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// egressPolicyName is the name of the driver's NetworkPolicy.
func egressPolicyName(prefix string) string { return prefix + "-egress" }

// egressPolicy is the NetworkPolicy that gives the driver's Pods the
// egress the sandbox driver gives executors on one host (runtime.Egress):
// the public internet less eg.Deny; the private ranges of
// runtime.DefaultEgressDeny only where eg.Allow names them, less eg.Deny;
// nothing at all beyond the rest when eg.Deny holds 0.0.0.0/0; and always
// the cluster's DNS (kube-dns in kube-system) and Hangar's forwardAddr,
// where the forwards listen. NetworkPolicy only allows, so each allowed
// range is a rule with the denied ranges inside it as exceptions.
func egressPolicy(ns, prefix, forwardAddr string, eg runtime.Egress) (*networkingv1.NetworkPolicy, error) {
	parse := func(ss []string) ([]netip.Prefix, error) {
		out := make([]netip.Prefix, 0, len(ss))
		for _, s := range ss {
			p, err := netip.ParsePrefix(s)
			if err != nil || !p.Addr().Is4() {
				return nil, hangar.Errorf(hangar.KindInvalid, "egress: %q is not an IPv4 prefix", s)
			}
			out = append(out, p.Masked())
		}
		return out, nil
	}
	allow, err := parse(eg.Allow)
	if err != nil {
		return nil, err
	}
	deny, err := parse(eg.Deny)
	if err != nil {
		return nil, err
	}
	defaults, _ := parse(runtime.DefaultEgressDeny)
	var rules []networkingv1.NetworkPolicyEgressRule
	block := func(cidr netip.Prefix, except []netip.Prefix) {
		for _, d := range except {
			if covers(d, cidr) {
				return // denied whole
			}
		}
		b := &networkingv1.IPBlock{CIDR: cidr.String()}
		var kept []netip.Prefix // widest first, none inside another
		for _, d := range slices.SortedStableFunc(slices.Values(except), func(a, b netip.Prefix) int { return a.Bits() - b.Bits() }) {
			if covers(cidr, d) && !slices.ContainsFunc(kept, func(k netip.Prefix) bool { return covers(k, d) }) {
				kept = append(kept, d)
				b.Except = append(b.Except, d.String())
			}
		}
		rules = append(rules, networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{{IPBlock: b}}})
	}
	block(netip.MustParsePrefix("0.0.0.0/0"), append(defaults, deny...))
	for _, a := range allow {
		block(a, deny)
	}
	udp, tcp, dns := corev1.ProtocolUDP, corev1.ProtocolTCP, intstr.FromInt32(53)
	rules = append(rules, networkingv1.NetworkPolicyEgressRule{
		To: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
		}},
		Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &dns}, {Protocol: &tcp, Port: &dns}},
	})
	if forwardAddr != "" {
		rules = append(rules, networkingv1.NetworkPolicyEgressRule{
			To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: forwardAddr + "/32"}}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp}},
		})
	}
	sel := map[string]string{LabelManagedBy: "hangar", LabelPrefix: prefix}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: egressPolicyName(prefix), Namespace: ns, Labels: sel},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: sel},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress:      rules,
		},
	}, nil
}

// covers reports whether prefix a holds all of b.
func covers(a, b netip.Prefix) bool {
	return a.Bits() <= b.Bits() && a.Contains(b.Addr())
}

// applyEgressPolicy creates the driver's NetworkPolicy, or brings the one
// an earlier run left up to date.
func (d *Driver) applyEgressPolicy(ctx context.Context, eg runtime.Egress) error {
	np, err := egressPolicy(d.cfg.Namespace, d.cfg.Prefix, d.cfg.ForwardAddr, eg)
	if err != nil {
		return err
	}
	api := d.cs.NetworkingV1().NetworkPolicies(d.cfg.Namespace)
	old, err := api.Get(ctx, np.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = api.Create(ctx, np, metav1.CreateOptions{})
	case err == nil:
		old.Labels, old.Spec = np.Labels, np.Spec
		_, err = api.Update(ctx, old, metav1.UpdateOptions{})
	}
	if err != nil {
		return hangar.Errorf(hangar.KindUnavailable, "kubernetes driver: egress NetworkPolicy %s: %v", np.Name, err)
	}
	return nil
}
