import { describe, expect, it } from 'vitest';

import { extentOf, pathOf } from '../src/charts';

describe('chart geometry', () => {
  it('finds the extent of finite points only', () => {
    expect(extentOf([{ x: [0, 1, 2], y: [1, null, 3] }, { x: [5], y: [NaN] }])).toEqual({ xMin: 0, xMax: 2, yMin: 1, yMax: 3 });
    expect(extentOf([{ x: [], y: [] }])).toBeNull();
  });

  it('widens a flat line or a single point so it can be drawn', () => {
    expect(extentOf([{ x: [3], y: [10] }])).toEqual({ xMin: 2, xMax: 4, yMin: 9.5, yMax: 10.5 });
    expect(extentOf([{ x: [0, 1], y: [0, 0] }])).toEqual({ xMin: 0, xMax: 1, yMin: -1, yMax: 1 });
  });

  it('draws y upwards in the box, breaking the line at missing values', () => {
    const extent = { xMin: 0, xMax: 10, yMin: 0, yMax: 1 };
    expect(pathOf({ x: [0, 5, 10], y: [0, 1, 0.5] }, extent, 100, 50, 0)).toBe('M0.0 50.0 L50.0 0.0 L100.0 25.0');
    expect(pathOf({ x: [0, 5, 10], y: [0, null, 0.5] }, extent, 100, 50, 0)).toBe('M0.0 50.0 M100.0 25.0');
    expect(pathOf({ x: [0, 10], y: [0, 1] }, extent, 100, 50, 2)).toBe('M2.0 48.0 L98.0 2.0');
  });
});
