export declare const MOTO_VENV: string;
export declare const MOTO_REQUIREMENT: string;
/** A Python that can run `-m moto.server` (moto 5), or undefined. */
export declare function findMotoPython(root: string): string | undefined;
