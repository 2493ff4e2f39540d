// The error for a config.json that runbox refuses before anything is created (runc's wording where it has one).
export class SpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpecError';
  }
}
