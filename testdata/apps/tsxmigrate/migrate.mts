// Type annotations: only tsx (or another TypeScript runner) can run this.
const message: string = "migrated with tsx";
console.log(message);
