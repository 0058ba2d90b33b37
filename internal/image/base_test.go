package image

import "testing"

func TestMirrorIn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text, want string
	}{
		{"deb822", "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n", "http://mirror.example/debian"},
		{"deb822 other suite", "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n", ""},
		{"one-line", "# comment\ndeb [signed-by=/k.gpg arch=amd64] http://m.example/debian bookworm main\n", "http://m.example/debian"},
		{"one-line other suite", "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := mirrorIn(tt.text, "bookworm"); got != tt.want {
				t.Errorf("mirrorIn() = %q, want %q", got, tt.want)
			}
		})
	}
}
