// Gogreeter is a minimal DBOS Go app (dbos-transact-golang) used as a Hangar
// end-to-end fixture. `./main migrate` creates its table; `./main` serves
// GET /greet/{name}, a durable two-step workflow that writes a row to the app
// database and reads it back, on port 8080.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/jackc/pgx/v5/pgxpool"
)

type greeting struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Message string `json:"message"`
}

func main() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DBOS_DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		_, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS greetings (
			id bigserial PRIMARY KEY, name text NOT NULL, greeted_at timestamptz DEFAULT now())`)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("migrate: table greetings is ready")
		return
	}

	dctx, err := dbos.NewContext(ctx, dbos.Config{AppName: "gogreeter", DatabaseURL: os.Getenv("DBOS_SYSTEM_DATABASE_URL")})
	if err != nil {
		log.Fatal(err)
	}
	greet := func(ctx dbos.Context, name string) (greeting, error) {
		id, err := dbos.RunAsStep(ctx, func(ctx context.Context) (int64, error) {
			var id int64
			err := pool.QueryRow(ctx, "INSERT INTO greetings (name) VALUES ($1) RETURNING id", name).Scan(&id)
			return id, err
		}, dbos.WithStepName("insertGreeting"))
		if err != nil {
			return greeting{}, err
		}
		return dbos.RunAsStep(ctx, func(ctx context.Context) (greeting, error) {
			g := greeting{ID: id}
			err := pool.QueryRow(ctx, "SELECT name FROM greetings WHERE id=$1", id).Scan(&g.Name)
			g.Message = "Hello, " + g.Name + "!"
			return g, err
		}, dbos.WithStepName("readGreeting"))
	}
	dbos.RegisterWorkflow(dctx, greet, dbos.WithWorkflowName("greetWorkflow"))
	if err := dbos.Launch(dctx); err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "gogreeter v1") })
	mux.HandleFunc("GET /greet/{name}", func(w http.ResponseWriter, r *http.Request) {
		h, err := dbos.RunWorkflow(dctx, greet, r.PathValue("name"))
		if err == nil {
			var g greeting
			if g, err = h.GetResult(); err == nil {
				json.NewEncoder(w).Encode(map[string]any{"id": g.ID, "name": g.Name, "message": g.Message,
					"version": dbos.GetApplicationVersion(dctx), "executor": dbos.GetExecutorID(dctx)})
				return
			}
		}
		http.Error(w, err.Error(), http.StatusInternalServerError)
	})
	srv := &http.Server{Addr: ":8080", Handler: mux}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		dbos.Shutdown(dctx, 5*time.Second)
	}()
	fmt.Println("gogreeter listening on :8080")
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
