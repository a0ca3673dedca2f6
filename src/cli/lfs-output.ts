/** Buffered standard output for commands that print a line per file of a large tree. */
export class Output {
  private chunks: string[] = [];
  private size = 0;

  constructor(private readonly sink: (s: string) => void = (s) => void process.stdout.write(s)) {}

  write(s: string): void {
    if (s.length === 0) return;
    this.chunks.push(s);
    this.size += s.length;
    if (this.size >= 64 * 1024) this.flush();
  }

  flush(): void {
    if (this.chunks.length === 0) return;
    const s = this.chunks.join('');
    this.chunks = [];
    this.size = 0;
    this.sink(s);
  }
}
