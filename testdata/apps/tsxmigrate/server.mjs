import http from "node:http";

http.createServer((req, res) => res.end("tsxmigrate\n")).listen(3000, "0.0.0.0");
