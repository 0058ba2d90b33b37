// Command idleconns opens idle keep-alive connections to a TLS server for
// bench/router/run.sh, which measures what they cost the server: each
// connection makes one request (HTTP/1.1, or HTTP/2 with -h2) and then
// stays open, doing nothing. Connections come from 127.0.<-net>.x, 200
// per address, under the per-IP caps of the proxies measured. It prints
// "open <n>" once all are open and holds them until killed.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func main() {
	addr := flag.String("addr", "", "the server's ip:port")
	host := flag.String("host", "", "the TLS server name and Host")
	n := flag.Int("n", 1000, "connections")
	h2 := flag.Bool("h2", false, "speak HTTP/2")
	subnet := flag.Int("net", 1, "the third byte of the source addresses, 127.0.<net>.x")
	flag.Parse()
	conns := make([]net.Conn, 0, *n)
	for i := range *n {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte(*subnet), byte(1+i/200))}}
		proto := "http/1.1"
		if *h2 {
			proto = "h2"
		}
		c, err := tls.DialWithDialer(&d, "tcp", *addr, &tls.Config{ServerName: *host, InsecureSkipVerify: true, NextProtos: []string{proto}})
		if err != nil {
			log.Fatalf("connection %d: %v", i, err)
		}
		if *h2 {
			err = getH2(c, *host)
		} else {
			err = getHTTP1(c, *host)
		}
		if err != nil {
			log.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	fmt.Println("open", len(conns))
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}

func getHTTP1(c net.Conn, host string) error {
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

func getH2(c net.Conn, host string) error {
	c.Write([]byte(http2.ClientPreface))
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", host}, {":path", "/"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				return nil
			}
		case *http2.HeadersFrame:
			if f.StreamEnded() {
				return nil
			}
		case *http2.GoAwayFrame, *http2.RSTStreamFrame:
			return fmt.Errorf("the server sent %v", f)
		}
	}
}
