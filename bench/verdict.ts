// How every benchmark states a target: "≤ 1.5×, met" only when the measured value is within it.
export function verdict(value: number, limit: number, unit: string, comparison: '≤' | '<' = '≤'): string {
  const met = comparison === '≤' ? value <= limit : value < limit;
  return `${comparison} ${limit}${unit}, ${met ? 'met' : 'NOT met'}`;
}
